// A fresh, empty directory for one test, removed with everything in it when the test is done:
// the usual "foreign system" of a file-based connector under test.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace syncpod::testkit {

class ScratchDirectory {
 public:
  /// Creates <temp dir>/<prefix>-XXXXXX (mkdtemp, mode 0700); throws std::runtime_error if it
  /// cannot. The temp dir is TMPDIR's, or /tmp.
  explicit ScratchDirectory(std::string_view prefix = "syncpod-testkit") {
    const auto pattern =
        (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (::mkdtemp(buffer.data()) == nullptr) {
      throw std::runtime_error("cannot create a scratch directory " + pattern + ": " +
                               std::strerror(errno));
    }
    path_ = buffer.data();
  }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  /// Removes the directory and its contents; errors are ignored (a test may have broken it).
  ~ScratchDirectory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }

  const std::filesystem::path& path() const { return path_; }
  std::string string() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace syncpod::testkit
