# syncpod_add_plugin_test(<name> PLUGIN <plugin target> SOURCES <file>... [PROPERTIES <prop> <value>...])
#
# Builds a GoogleTest executable that tests a plugin through the conformance kit: it links
# Syncpod::testkit and GTest::gtest_main, gets the plugin file's path as the string macro
# SYNCPOD_TESTKIT_PLUGIN_FILE, builds after the plugin, and registers its tests with ctest
# (gtest_discover_tests, with PROPERTIES passed on).
include_guard(GLOBAL)
include(GoogleTest)

function(syncpod_add_plugin_test name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "PLUGIN" "SOURCES;PROPERTIES")
  if(NOT ARG_PLUGIN OR NOT ARG_SOURCES)
    message(FATAL_ERROR "syncpod_add_plugin_test(${name}): PLUGIN and SOURCES are required")
  endif()
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "syncpod_add_plugin_test(${name}): unknown arguments ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT TARGET ${ARG_PLUGIN})
    message(FATAL_ERROR "syncpod_add_plugin_test(${name}): PLUGIN ${ARG_PLUGIN} is not a target")
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE Syncpod::testkit GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
    SYNCPOD_TESTKIT_PLUGIN_FILE="$<TARGET_FILE:${ARG_PLUGIN}>")
  add_dependencies(${name} ${ARG_PLUGIN})
  if(ARG_PROPERTIES)
    gtest_discover_tests(${name} DISCOVERY_TIMEOUT 30 PROPERTIES ${ARG_PROPERTIES})
  else()
    gtest_discover_tests(${name} DISCOVERY_TIMEOUT 30)
  endif()
endfunction()
