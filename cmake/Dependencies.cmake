# Third-party libraries, all from Debian packages (scripts/bootstrap installs them).
find_package(Threads REQUIRED)
find_package(Poco 1.11 REQUIRED COMPONENTS Foundation Util JSON Net)
find_package(spdlog 1.10 REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(GTest REQUIRED)
# Boost.DLL loads plugins. It is header-only; with BOOST_DLL_USE_STD_FS (set where it is used)
# it takes std::filesystem instead of Boost.Filesystem, so no Boost library is linked.
find_package(Boost 1.74 REQUIRED)

# libpqxx 6 ships no CMake package on Debian 12, only pkg-config.
find_package(PkgConfig REQUIRED)
pkg_check_modules(PQXX REQUIRED IMPORTED_TARGET libpqxx>=6.4)
# libpq itself: the core parses connection strings with it, the postgres connector uses only it.
pkg_check_modules(PQ REQUIRED IMPORTED_TARGET libpq)
