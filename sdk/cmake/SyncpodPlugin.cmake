# syncpod_add_plugin(<name> SOURCES <file>... [OUTPUT_NAME <name>])
#
# Builds a connector plugin: a MODULE library linked against Syncpod::sdk, with hidden symbol
# visibility (only the SYNCPOD_PLUGIN entry point is exported), no undefined symbols left for
# the host to resolve, and no STB_GNU_UNIQUE symbols, so that the host can unload it again.
# The file is named lib<name>.so unless OUTPUT_NAME says otherwise.
function(syncpod_add_plugin name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "OUTPUT_NAME" "SOURCES")
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "syncpod_add_plugin(${name}): SOURCES is required")
  endif()
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "syncpod_add_plugin(${name}): unknown arguments ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE Syncpod::sdk)
  set_target_properties(${name} PROPERTIES
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  if(ARG_OUTPUT_NAME)
    set_target_properties(${name} PROPERTIES OUTPUT_NAME "${ARG_OUTPUT_NAME}")
  endif()
  # GCC gives static locals of inline functions in namespace std (std::regex, std::to_chars
  # tables) STB_GNU_UNIQUE binding despite hidden visibility, and glibc never unloads a library
  # that has such a symbol: dlclose would silently keep every plugin loaded forever.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${name} PRIVATE -fno-gnu-unique)
  endif()
  if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
    target_link_options(${name} PRIVATE "LINKER:--no-undefined")
  endif()
  # GCC gives some standard-library template statics (std::regex, std::to_chars) the binding
  # STB_GNU_UNIQUE, and the loader never unloads a library that has one: the host could not
  # release a plugin. Private copies are what hidden visibility means anyway (clang never
  # emits such symbols).
  target_compile_options(${name} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-fno-gnu-unique>)
endfunction()
