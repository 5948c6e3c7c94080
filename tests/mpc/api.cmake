# The public C++ API of both privacy modes (include/anvil/privacy.hpp, library
# anvil_privacy): mpc engines, the fixed run, the dealer, a server on a thread and two
# secure clients on loopback; an anon engine, a worker on a thread and a sqlite store.
anvil_test(privacy_api_tests SOURCES ${CMAKE_CURRENT_LIST_DIR}/api_test.cpp LIBS anvil_privacy anvil_tools_common)
target_compile_definitions(privacy_api_tests PRIVATE ANVIL_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
