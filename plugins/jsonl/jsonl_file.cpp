#include "jsonl_file.hpp"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <thread>
#include <unistd.h>

#include <sys/file.h>
#include <sys/stat.h>

namespace syncpod::plugins::jsonl {
namespace {

constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";

/// Closes a file descriptor when it goes out of scope.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;

  int get() const { return fd_; }
  /// Closes now, reporting the error: close() is where some file systems report write errors.
  int close() {
    const int result = ::close(fd_);
    fd_ = -1;
    return result;
  }

 private:
  int fd_;
};

std::string randomSuffix() {
  std::random_device device;
  std::uniform_int_distribution<unsigned long long> distribution;
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", distribution(device));
  return text;
}

}  // namespace

void throwSystemError(const std::string& what, const std::filesystem::path& path, int error) {
  const std::string message = what + " " + path.string() + ": " + std::strerror(error);
  switch (error) {
    case EACCES:
    case EPERM:
    case EROFS:
    case ENOENT:
    case ENOTDIR:
    case EISDIR:
    case ELOOP:
    case ENAMETOOLONG: throw invalid(message);
    default: throw retryable(message);
  }
}

LineReader::LineReader(const std::filesystem::path& path) : path_(path) {
  in_.open(path, std::ios::binary);
  if (!in_) throwSystemError("cannot read", path, errno);
}

std::optional<std::string> LineReader::next() {
  const std::streamoff start = next_offset_;
  if (!std::getline(in_, line_)) {
    if (in_.bad()) throwSystemError("cannot read", path_, errno);
    return std::nullopt;
  }
  // getline consumed the line and, unless it stopped at the end of the file, its '\n'.
  next_offset_ = start + static_cast<std::streamoff>(line_.size()) + (in_.eof() ? 0 : 1);
  line_offset_ = start;
  ++line_number_;
  if (start == 0 && line_.starts_with(kByteOrderMark)) line_.erase(0, kByteOrderMark.size());
  if (!line_.empty() && line_.back() == '\r') line_.pop_back();
  return line_;
}

void LineReader::seek(std::streamoff offset, std::size_t line_number) {
  in_.clear();
  in_.seekg(offset);
  if (!in_) throwSystemError("cannot seek in", path_, errno == 0 ? EIO : errno);
  next_offset_ = offset;
  line_number_ = line_number - 1;
}

bool isBlank(const std::string& line) {
  return line.find_first_not_of(" \t\r\f\v") == std::string::npos;
}

Json parseLine(const std::string& line, const std::filesystem::path& path,
               std::size_t line_number) {
  const std::string where = path.string() + ", line " + std::to_string(line_number);
  Json fields;
  try {
    fields = Json::parse(line);
  } catch (const Json::parse_error& error) {
    // nlohmann's text reads "[json.exception.parse_error.101] parse error at line 1, column 7:
    // syntax error …"; its line is always 1 here, so keep the column and the explanation.
    std::string detail = error.what();
    if (const auto column = detail.find("column "); column != std::string::npos) {
      detail = detail.substr(column);
    }
    throw invalid(where + ": invalid JSON at " + detail);
  }
  if (!fields.is_object()) {
    throw invalid(where + ": expected a JSON object (one record per line), found " +
                  std::string(fields.type_name()));
  }
  return fields;
}

void replaceFile(const std::filesystem::path& path, const std::string& content) {
  const std::filesystem::path directory = path.has_parent_path() ? path.parent_path() : ".";
  const std::filesystem::path temporary =
      directory /
      (path.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" + randomSuffix());

  struct stat existing {};
  const bool exists = ::stat(path.c_str(), &existing) == 0;

  FileDescriptor file(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (file.get() < 0) throwSystemError("cannot create", temporary, errno);
  // From here on a failure must not leave the temporary file behind.
  struct Remover {
    const std::filesystem::path& path;
    bool armed = true;
    ~Remover() {
      if (armed) ::unlink(path.c_str());
    }
  } remover{temporary};

  if (exists && ::fchmod(file.get(), existing.st_mode & 07777) != 0) {
    throwSystemError("cannot set the permissions of", temporary, errno);
  }
  const char* data = content.data();
  std::size_t left = content.size();
  while (left > 0) {
    const ssize_t written = ::write(file.get(), data, left);
    if (written < 0) {
      if (errno == EINTR) continue;
      throwSystemError("cannot write", temporary, errno);
    }
    data += written;
    left -= static_cast<std::size_t>(written);
  }
  if (::fsync(file.get()) != 0) throwSystemError("cannot flush", temporary, errno);
  if (file.close() != 0) throwSystemError("cannot write", temporary, errno);
  if (::rename(temporary.c_str(), path.c_str()) != 0)
    throwSystemError("cannot replace", path, errno);
  remover.armed = false;

  // The rename is durable only once the directory entry is on disk.
  FileDescriptor dir(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0 || ::fsync(dir.get()) != 0)
    throwSystemError("cannot flush the directory", directory, errno);
}

DirectoryLock::DirectoryLock(const std::filesystem::path& directory) {
  fd_ = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0) throwSystemError("cannot open the directory", directory, errno);
  // Another apply on the same directory finishes in well under this; if not, it is stuck and a
  // later attempt is better than waiting forever.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (error != EWOULDBLOCK && error != EINTR) {
      ::close(fd_);
      throwSystemError("cannot lock the directory", directory, error);
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::close(fd_);
      throw retryable("another process has been writing to " + directory.string() +
                      " for 30 s; try again later");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

DirectoryLock::~DirectoryLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

}  // namespace syncpod::plugins::jsonl
