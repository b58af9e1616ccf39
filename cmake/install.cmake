include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(concur_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/concur)

install(TARGETS concur EXPORT concur-targets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# concur::mpi (MpiPoolExecutor) when it was built: same export set, so find_package(concur) gives
# both targets; the package config then looks for MPI too.
set(CONCUR_PACKAGE_HAS_MPI OFF)
if(TARGET concur_mpi)
  set_target_properties(concur_mpi PROPERTIES EXPORT_NAME mpi)  # concur::mpi, as in this tree
  install(TARGETS concur_mpi EXPORT concur-targets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  set(CONCUR_PACKAGE_HAS_MPI ON)
endif()
# concur::asyncio's TLS links OpenSSL: the package config looks for it when asyncio was built.
set(CONCUR_PACKAGE_HAS_ASYNCIO ${CONCUR_ASYNCIO})
install(DIRECTORY include/concur DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT concur-targets NAMESPACE concur:: DESTINATION ${concur_cmake_dir})

configure_package_config_file(cmake/concur-config.cmake.in
                              ${CMAKE_CURRENT_BINARY_DIR}/concur-config.cmake
                              INSTALL_DESTINATION ${concur_cmake_dir})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/concur-config-version.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/concur-config.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/concur-config-version.cmake
        DESTINATION ${concur_cmake_dir})
if(TARGET concur-lab)
  install(TARGETS concur-lab RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
