# Build-time step: turns the OpenCL C sources into one C++ file of byte arrays (cl_sources.h), so the backend
# never reads a file at run time. Run by the custom command in opencl.cmake:
#   cmake -DOUT=<generated.cpp> -DSOURCES=<a.cl|b.cl|...> -P embed_cl.cmake
# Byte arrays rather than raw string literals: no length limits, no delimiter clashes, any byte survives.
string(REPLACE "|" ";" sources "${SOURCES}")
set(arrays "")
set(table "")
set(index 0)
foreach(src IN LISTS sources)
  file(READ "${src}" hex HEX)
  string(LENGTH "${hex}" hex_chars)
  math(EXPR bytes "${hex_chars} / 2")
  # 0xNN, per byte, 24 to a line.
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
  string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){24})" "\\1\n    " body "${body}")
  get_filename_component(name "${src}" NAME)
  string(APPEND arrays "// ${name}\nconst unsigned char kSource${index}[] = {\n    ${body}0x00};\n\n")
  string(APPEND table "    {\"${name}\", reinterpret_cast<const char*>(kSource${index}), ${bytes}},\n")
  math(EXPR index "${index} + 1")
endforeach()

set(text "// Generated at build time by kernels/src/opencl/embed_cl.cmake from kernels/src/opencl/kernels/*.cl.
// Do not edit: edit the .cl files.
#include \"cl_sources.h\"

namespace confidant::opencl {

namespace {

${arrays}}  // namespace

const EmbeddedClSource kEmbeddedClSources[] = {
${table}};
const size_t kEmbeddedClSourceCount = ${index};

}  // namespace confidant::opencl
")
# Rewrite only on change, so an untouched .cl set does not recompile the file.
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
  if(old STREQUAL text)
    return()
  endif()
endif()
file(WRITE "${OUT}" "${text}")
