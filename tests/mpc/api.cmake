# The public C++ API of both privacy modes (include/anvil/privacy.hpp, library
# anvil_privacy): mpc engines, the fixed run, the dealer, a server on a thread and two
# secure clients on loopback; an anon engine, a worker on a thread and a sqlite store.
anvil_test(privacy_api_tests SOURCES ${CMAKE_CURRENT_LIST_DIR}/api_test.cpp LIBS anvil_privacy anvil_tools_common)
target_compile_definitions(privacy_api_tests PRIVATE ANVIL_SOURCE_DIR="${PROJECT_SOURCE_DIR}")

# examples/cpp/mpc_client against a real mpc-server process (tests/mpc/mpc_client_example.sh).
add_test(NAME privacy_api_example
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/mpc_client_example.sh $<TARGET_FILE:anvil_cli> $<TARGET_FILE:mpc_client>
          ${PROJECT_SOURCE_DIR}/.venv/bin/python ${PROJECT_SOURCE_DIR}/tests/models/precision/digits_mlp
          ${CMAKE_CURRENT_BINARY_DIR}/privacy_api_example)
set_tests_properties(privacy_api_example PROPERTIES TIMEOUT 120)
