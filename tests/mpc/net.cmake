# The mpc channel over real loopback sockets and the offline material store on real files.
anvil_test(mpc_net_tests SOURCES ${CMAKE_CURRENT_LIST_DIR}/channel_test.cpp ${CMAKE_CURRENT_LIST_DIR}/material_test.cpp
           LIBS anvil_mpc_net)
set_tests_properties(mpc_net_tests PROPERTIES TIMEOUT 120)
