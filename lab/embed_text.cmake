# Writes OUT, a header that holds the text of IN as kClaimsText, so that `concur-lab claims`
# works anywhere the binary goes. Run at build time (lab/CMakeLists.txt); while IN does not
# exist yet, the text says so.
if(EXISTS "${IN}")
  file(READ "${IN}" text)
else()
  set(text "docs/CLAIMS.md has not been written yet: the map of the tutorial's claims to the experiments will be printed here.\n")
endif()
file(WRITE "${OUT}.tmp"
     "// Generated from docs/CLAIMS.md by lab/embed_text.cmake: do not edit.\n"
     "#pragma once\n"
     "namespace concur::lab {\n"
     "inline constexpr const char kClaimsText[] = R\"claims_md(${text})claims_md\";\n"
     "}  // namespace concur::lab\n")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
file(REMOVE "${OUT}.tmp")
