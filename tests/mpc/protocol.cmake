# The two-party protocol (runtime/mpc/protocol.*, dealer.*, local_transport.cpp) on
# hand-built programs and the compiled digits models, both parties on two threads, against
# the fixed executor.
anvil_test(mpc_protocol_tests
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/protocol_test.cpp ${CMAKE_CURRENT_LIST_DIR}/protocol_model_test.cpp
  LIBS anvil_mpc_protocol anvil_mpc anvil_tools_common)
target_compile_definitions(mpc_protocol_tests PRIVATE ANVIL_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
