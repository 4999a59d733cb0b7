// The file side of the jsonl connector: reading a JSON Lines file line by line, parsing a line
// into a record's fields, and replacing a file atomically.
#pragma once

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <syncpod/sdk/model.hpp>

namespace syncpod::plugins::jsonl {

/// Reads a file one line at a time (without the line break, a trailing '\r' or a leading UTF-8
/// byte order mark), counting lines from 1 and remembering where each one starts, so that a
/// caller can come back to a line later with seek().
class LineReader {
 public:
  /// Opens `path`; throws invalid() naming the file when it cannot be read.
  explicit LineReader(const std::filesystem::path& path);

  /// The next line, or nullopt at the end of the file. Throws retryable() on a read error.
  std::optional<std::string> next();

  /// Number of the line next() returned last (1-based); 0 before the first.
  std::size_t lineNumber() const { return line_number_; }
  /// Byte offset where the line next() returned last starts.
  std::streamoff lineOffset() const { return line_offset_; }

  /// Positions the reader at `offset` (a lineOffset() seen earlier) as line `line_number`.
  void seek(std::streamoff offset, std::size_t line_number);

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::ifstream in_;
  std::string line_;
  std::size_t line_number_ = 0;
  std::streamoff line_offset_ = 0;
  std::streamoff next_offset_ = 0;
};

/// Whether a line holds nothing but blanks (such lines are skipped).
bool isBlank(const std::string& line);

/// The fields of one line: a JSON object. Throws invalid() naming the file and line otherwise.
Json parseLine(const std::string& line, const std::filesystem::path& path, std::size_t line_number);

/// Replaces `path` with `content` so that a crash at any moment leaves either the old file or
/// the new one, never a mix: writes <path>.tmp-<pid>-<random> in the same directory, fsyncs it,
/// renames it over `path` and fsyncs the directory. A new file keeps the old file's permission
/// bits. The temporary file is removed when anything fails.
void replaceFile(const std::filesystem::path& path, const std::string& content);

/// An exclusive advisory lock (flock) on a directory, held while it lives. It serialises the
/// read-modify-write of apply between processes on one machine; readers need no lock because a
/// rename never changes a file they already opened.
class DirectoryLock {
 public:
  explicit DirectoryLock(const std::filesystem::path& directory);
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

/// A PluginError for a failed system call on `path`: invalid for what a person must fix
/// (permissions, a missing or read-only directory), retryable for the rest (disk full, I/O).
[[noreturn]] void throwSystemError(const std::string& what, const std::filesystem::path& path,
                                   int error);

}  // namespace syncpod::plugins::jsonl
