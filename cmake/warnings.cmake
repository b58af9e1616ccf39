# Warnings for concur's own targets only; never exported to users of the package.
add_library(concur_warnings INTERFACE)
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(concur_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow
                                                   -Wnon-virtual-dtor -Wold-style-cast)
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    # The lock annotations of concur/base/thread_annotations.hpp are checked by Clang only.
    target_compile_options(concur_warnings INTERFACE -Wthread-safety)
  endif()
  if(CONCUR_WERROR)
    target_compile_options(concur_warnings INTERFACE -Werror)
  endif()
endif()
