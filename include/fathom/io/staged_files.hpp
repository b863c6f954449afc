#pragma once
// A set of files in a folder replaced as one (a training checkpoint: lens, optimizer state and
// step must always belong to the same step, whenever the process is killed).
//
//   io::commit_files(dir, [&](const fs::path& staging) { ...write every file into staging... });
//
// 1. The files are written into <dir>/.staging/ (left over from a killed save: removed first).
// 2. Each is fsynced, then the folder is renamed to <dir>/.ready/: the commit point. A kill before
//    it leaves <dir>'s files untouched; a kill after it is finished by the next recover_files().
// 3. Each file is renamed from .ready/ over its namesake in <dir> (rename is atomic per file),
//    then .ready/ is removed.
// recover_files(dir) finishes step 3 of a committed set and drops an uncommitted staging folder;
// call it before reading the files (commit_files calls it first too). Other files in <dir> are
// never touched. Errors (full disk, read-only folder) are IoErrors naming the file, raised before
// the commit point, so the files already in <dir> stay as they were.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

#include "fathom/core/error.hpp"

namespace fathom::io {

namespace detail {
inline const char* kStagingDir = ".staging";
inline const char* kReadyDir = ".ready";

// Flushes a file or folder to the device (so a power loss after the commit keeps it, too).
inline void fsync_path(const std::filesystem::path& p, bool dir) {
  const int fd = ::open(p.c_str(), (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) throw IoError(p.string(), "", std::string("cannot open to sync: ") + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  // Some file systems (e.g. parts of overlayfs) refuse fsync on folders; that loses nothing a
  // kill could lose, so only file errors count.
  if (rc != 0 && !(dir && (e == EINVAL || e == EROFS)))
    throw IoError(p.string(), "", std::string("cannot sync to disk: ") + std::strerror(e));
}

inline void rename_or_throw(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::error_code ec;
  std::filesystem::rename(from, to, ec);
  if (ec) throw IoError(to.string(), "", "cannot rename " + from.string() + " to it: " + ec.message());
}

// Step 3: moves every file of <dir>/.ready/ over its namesake, then removes .ready/.
inline void finish_ready(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  const fs::path ready = dir / kReadyDir;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(ready, ec)) rename_or_throw(e.path(), dir / e.path().filename());
  if (ec) throw IoError(ready.string(), "", "cannot list: " + ec.message());
  fs::remove_all(ready, ec);
  if (ec) throw IoError(ready.string(), "", "cannot remove: " + ec.message());
}
}  // namespace detail

// Brings <dir> to the last committed state: finishes a commit a kill interrupted after its commit
// point and removes a staging folder from before it. A folder without either is left alone.
inline void recover_files(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(dir / detail::kReadyDir, ec)) detail::finish_ready(dir);
  if (fs::exists(dir / detail::kStagingDir, ec)) {
    fs::remove_all(dir / detail::kStagingDir, ec);
    if (ec) throw IoError((dir / detail::kStagingDir).string(), "", "cannot remove: " + ec.message());
  }
}

// Writes files with `write(staging_folder)` and replaces their namesakes in `dir` as one set.
template <class Write>
void commit_files(const std::filesystem::path& dir, Write&& write) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError(dir.string(), "", "cannot create the folder: " + ec.message());
  recover_files(dir);
  const fs::path staging = dir / detail::kStagingDir;
  fs::create_directory(staging, ec);
  if (ec) throw IoError(staging.string(), "", "cannot create: " + ec.message());
  try {
    write(staging);
    for (const auto& e : fs::directory_iterator(staging, ec)) detail::fsync_path(e.path(), false);
    if (ec) throw IoError(staging.string(), "", "cannot list: " + ec.message());
    detail::fsync_path(staging, true);
  } catch (...) {
    fs::remove_all(staging, ec);  // a half-written set never reaches `dir`; free the space it took
    throw;
  }
  detail::rename_or_throw(staging, dir / detail::kReadyDir);  // the commit point
  detail::fsync_path(dir, true);
  detail::finish_ready(dir);
}

}  // namespace fathom::io
