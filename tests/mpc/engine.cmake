# The fixed-point engine of the mpc mode: program files, ring kernels, the fixed executor,
# the compiler (tests/mpc/engine/), and the --mode=mpc / --mode=fixed commands.
anvil_test(mpc_engine_tests
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/engine/program_test.cpp ${CMAKE_CURRENT_SOURCE_DIR}/engine/ring_ops_test.cpp
          ${CMAKE_CURRENT_SOURCE_DIR}/engine/compile_test.cpp
  LIBS anvil_mpc anvil_cpu onnx_proto protobuf::libprotobuf)
target_compile_definitions(mpc_engine_tests PRIVATE ANVIL_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
add_test(NAME mpc_engine_cli
  COMMAND ${CMAKE_COMMAND} -DANVIL=$<TARGET_FILE:anvil_cli> -DMODELS=${PROJECT_SOURCE_DIR}/tests/models/precision
          -DPYTHON=${PROJECT_SOURCE_DIR}/.venv/bin/python -DOUT=${CMAKE_CURRENT_BINARY_DIR}/mpc_engine_cli
          -P ${CMAKE_CURRENT_SOURCE_DIR}/engine/cli_test.cmake)
