# The two-party protocol (runtime/mpc/protocol.*, dealer.*, local_transport.cpp) on
# hand-built programs, both parties on two threads, against the fixed executor.
anvil_test(mpc_protocol_tests SOURCES ${CMAKE_CURRENT_LIST_DIR}/protocol_test.cpp LIBS anvil_mpc_protocol anvil_mpc)
