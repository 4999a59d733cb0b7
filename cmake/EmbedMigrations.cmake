# Script mode: cmake -DOUTPUT=<file.cpp> -DSOURCES=<a.sql;b.sql> -P EmbedMigrations.cmake
# Writes a C++ source defining embeddedMigrationFiles(): every migration's file name and
# text, so the binary carries its schema and needs no files beside it.

list(SORT SOURCES)
set(entries "")
set(index 0)
foreach(source IN LISTS SOURCES)
  get_filename_component(name "${source}" NAME)
  file(READ "${source}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
  string(APPEND arrays "constexpr char kFile${index}[] = {${bytes} '\\0'};\n")
  string(APPEND entries "      {\"${name}\", std::string_view(kFile${index}, sizeof(kFile${index}) - 1)},\n")
  math(EXPR index "${index} + 1")
endforeach()

file(WRITE "${OUTPUT}.tmp" "// Generated from migrations/*.sql by cmake/EmbedMigrations.cmake; do not edit.
#include <string_view>
#include <utility>
#include <vector>

namespace syncpod::core {
namespace {
${arrays}}  // namespace

std::vector<std::pair<std::string_view, std::string_view>> embeddedMigrationFiles() {
  return {
${entries}  };
}

}  // namespace syncpod::core
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
