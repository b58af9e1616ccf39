# cmake -DBUILD_DIR=<a configured concur build> -DSOURCE_DIR=<this folder> -P run.cmake
# Installs concur from BUILD_DIR into a scratch prefix, builds the consumer against it, runs it.
set(prefix ${BUILD_DIR}/find-package/prefix)
set(consumer ${BUILD_DIR}/find-package/consumer)
file(REMOVE_RECURSE ${BUILD_DIR}/find-package)
foreach(step
    "${CMAKE_COMMAND};--install;${BUILD_DIR};--prefix;${prefix}"
    "${CMAKE_COMMAND};-S;${SOURCE_DIR};-B;${consumer};-DCMAKE_PREFIX_PATH=${prefix};-DCMAKE_BUILD_TYPE=Release"
    "${CMAKE_COMMAND};--build;${consumer}"
    "${consumer}/consumer")
  execute_process(COMMAND ${step} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "find-package test: `${step}` failed (${rc}):\n${out}\n${err}")
  endif()
endforeach()
# concur::mpi, when the package has it: one task on one worker rank, under mpirun.
find_program(mpirun mpirun)
if(EXISTS ${consumer}/mpi_consumer AND mpirun)
  execute_process(
    COMMAND ${CMAKE_COMMAND} -E env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
            ${mpirun} -n 2 --oversubscribe ${consumer}/mpi_consumer
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "find-package test: mpi_consumer under mpirun failed (${rc}):\n${out}\n${err}")
  endif()
endif()
message(STATUS "find-package test: a separate project found, built and ran against concur")
