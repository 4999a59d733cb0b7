# Compiler settings for project code: C++20, strict warnings, optional sanitizers, ccache.
# Flags live on INTERFACE targets that project targets link PRIVATE, so they never leak
# into consumers of the SDK.

set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_EXPORT_COMPILE_COMMANDS ON)
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/bin")

option(SYNCPOD_WARNINGS_AS_ERRORS "Treat compiler warnings in project code as errors" ${PROJECT_IS_TOP_LEVEL})
set(SYNCPOD_SANITIZERS "" CACHE STRING "Semicolon-separated sanitizers, e.g. address;undefined")

find_program(SYNCPOD_CCACHE ccache)
if(SYNCPOD_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER "${SYNCPOD_CCACHE}")
endif()

# -Wno-missing-field-initializers: structs give every member a default, and `{url, schema}`
# leaving the rest at their defaults is meant.
add_library(syncpod_warnings INTERFACE)
target_compile_options(syncpod_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wnon-virtual-dtor
  -Wold-style-cast -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough
  -Wno-missing-field-initializers
  $<$<BOOL:${SYNCPOD_WARNINGS_AS_ERRORS}>:-Werror>)

# Where tests/fakes/plugins puts its deliberately broken plugins: a test-only directory, never
# the lib/syncpod/plugins directory the host searches by default.
set(SYNCPOD_TEST_PLUGIN_DIR "${PROJECT_BINARY_DIR}/test-plugins")

# Extra ctest properties for every test (used by gtest_discover_tests calls).
set(SYNCPOD_TEST_PROPERTIES "")

add_library(syncpod_options INTERFACE)
if(SYNCPOD_SANITIZERS)
  if("address" IN_LIST SYNCPOD_SANITIZERS)
    set(SYNCPOD_TEST_PROPERTIES ENVIRONMENT
        "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/cmake/lsan.supp")
  endif()
  list(JOIN SYNCPOD_SANITIZERS "," _syncpod_sanitizers)
  target_compile_options(syncpod_options INTERFACE -fsanitize=${_syncpod_sanitizers} -fno-omit-frame-pointer)
  target_link_options(syncpod_options INTERFACE -fsanitize=${_syncpod_sanitizers})
endif()
