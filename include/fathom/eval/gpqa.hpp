#pragma once
// GPQA Diamond reader. The dataset ships as a password-protected zip whose questions must never
// be published in plain text, so the CSV is extracted at run time into a private temporary
// folder (unzip, as a subprocess with its output discarded), read into memory, and the folder is
// deleted at once. Columns are found by name in the official header: `Question`,
// `Correct Answer`, `Incorrect Answer 1..3`, `High-level domain`.
//
// Option order:
//   Shuffled     a seeded permutation per question (splitmix64 of seed and row; reproducible on
//                every platform, unlike std::shuffle);
//   CorrectLast  incorrect 1, 2, 3, then the correct answer (always D) — the order of the Void
//                paper's released code, kept only to compare with it: a model biased to "D"
//                scores 100 % there.
// Text: Trimmed strips surrounding whitespace from the question and answers; AsIs keeps them
// exactly as the dataset has them (some answers carry a leading space or a trailing newline) —
// the released Void code does, so the void preset reads GPQA AsIs. Empty-after-trimming is an
// error either way.
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/core/shared_path.hpp"
#include "fathom/core/splitmix.hpp"
#include "fathom/eval/csv.hpp"
#include "fathom/eval/task.hpp"

namespace fathom::eval {

enum class GpqaOrder : uint8_t { Shuffled, CorrectLast };
enum class GpqaText : uint8_t { Trimmed, AsIs };

namespace detail {
inline std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// A temporary folder removed with everything in it when the object dies.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "fathom-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw IoError(tmpl, "", "cannot create a temporary folder");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Runs `unzip -qq -o -P <password> <zip> -d <dir>` without a shell, output discarded.
inline void unzip_to(const std::string& zip, const std::string& password,
                     const std::filesystem::path& dir) {
  const pid_t pid = fork();
  if (pid < 0) throw IoError(zip, "", "cannot start unzip (fork failed)");
  if (pid == 0) {
    const int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) { dup2(devnull, 1); dup2(devnull, 2); }
    const std::string d = dir.string();
    execlp("unzip", "unzip", "-qq", "-o", "-P", password.c_str(), zip.c_str(), "-d", d.c_str(),
           static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw IoError(zip, "", WIFEXITED(status) && WEXITSTATUS(status) == 127
                               ? "cannot run `unzip` (install the Debian package unzip)"
                               : "unzip failed (exit status " +
                                     std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
                                     "; wrong password?)");
}
}  // namespace detail

// The zip password: $FATHOM_GPQA_PASSWORD, else the one the shared folder's README.md gives
// ("zip password `...`"), so it never needs to be written into code.
inline std::string gpqa_password() {
  if (const char* e = std::getenv("FATHOM_GPQA_PASSWORD"); e && *e) return e;
  const auto readme = (shared_dir() / "README.md").string();
  const std::string text = read_text_file(readme);
  std::smatch m;
  if (std::regex_search(text, m, std::regex("password `([^`]+)`"))) return m[1];
  throw UsageError(readme, "password", "no GPQA zip password found; set FATHOM_GPQA_PASSWORD");
}

// Items of a GPQA CSV text (official column names).
inline std::vector<Item> parse_gpqa_csv(std::string_view text, const std::string& file,
                                        GpqaOrder order, uint64_t seed,
                                        GpqaText text_mode = GpqaText::Trimmed) {
  const auto keep = [&](const std::string& f) { return text_mode == GpqaText::AsIs ? f : detail::trim(f); };
  auto recs = parse_csv(text, file);
  if (recs.empty()) throw DataError(file, "line 1", "empty file (no header)");
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < recs[0].fields.size(); ++i) col[recs[0].fields[i]] = i;
  auto need = [&](const std::string& name) {
    auto it = col.find(name);
    if (it == col.end()) throw DataError(file, "line 1, column " + name, "missing from the header");
    return it->second;
  };
  const size_t q = need("Question"), c = need("Correct Answer"), i1 = need("Incorrect Answer 1"),
               i2 = need("Incorrect Answer 2"), i3 = need("Incorrect Answer 3");
  const auto dom = col.find("High-level domain");
  std::vector<Item> out;
  for (size_t r = 1; r < recs.size(); ++r) {
    const auto& rec = recs[r];
    const std::string where = "line " + std::to_string(rec.line);
    if (rec.fields.size() != recs[0].fields.size())
      throw DataError(file, where, "expected " + std::to_string(recs[0].fields.size()) +
                                       " fields as in the header, got " +
                                       std::to_string(rec.fields.size()));
    Item it;
    it.id = "gpqa/" + std::to_string(out.size());
    it.subject = dom != col.end() ? detail::trim(rec.fields[dom->second]) : "gpqa";
    it.question = keep(rec.fields[q]);
    if (detail::trim(it.question).empty()) throw DataError(file, where + ", field Question", "empty");
    std::vector<std::string> opts = {keep(rec.fields[c]), keep(rec.fields[i1]), keep(rec.fields[i2]),
                                     keep(rec.fields[i3])};
    for (size_t k = 0; k < 4; ++k)
      if (detail::trim(opts[k]).empty())
        throw DataError(file, where + ", field " + (k ? "Incorrect Answer " + std::to_string(k)
                                                      : std::string("Correct Answer")),
                        "empty");
    std::vector<int> perm = {0, 1, 2, 3};  // perm[position] = original option (0 = correct)
    if (order == GpqaOrder::CorrectLast) {
      perm = {1, 2, 3, 0};
    } else {
      uint64_t s = splitmix64(seed ^ splitmix64(uint64_t(out.size())));
      for (int k = 3; k > 0; --k) {
        s = splitmix64(s);
        std::swap(perm[size_t(k)], perm[size_t(s % uint64_t(k + 1))]);
      }
    }
    for (int k = 0; k < 4; ++k) {
      it.choices.push_back(opts[size_t(perm[size_t(k)])]);
      if (perm[size_t(k)] == 0) it.answer = k;
    }
    out.push_back(std::move(it));
  }
  return out;
}

// Reads GPQA from the password zip (or a plain .csv, e.g. a test fixture).
inline Task read_gpqa(const std::string& path, GpqaOrder order = GpqaOrder::Shuffled,
                      uint64_t seed = 0, const std::string& password = {},
                      GpqaText text_mode = GpqaText::Trimmed) {
  Task t;
  t.kind = TaskKind::GPQA;
  if (std::filesystem::path(path).extension() != ".zip") {
    t.items = parse_gpqa_csv(read_text_file(path), path, order, seed, text_mode);
    return t;
  }
  if (!std::filesystem::exists(path)) throw IoError(path, "", "not found");
  detail::TempDir dir;
  detail::unzip_to(path, password.empty() ? gpqa_password() : password, dir.path());
  for (auto& e : std::filesystem::recursive_directory_iterator(dir.path()))
    if (e.path().extension() == ".csv") {
      // Errors name the zip and its member, never the temporary path.
      const std::string name = path + ":" + e.path().filename().string();
      t.items = parse_gpqa_csv(read_text_file(e.path().string()), name, order, seed, text_mode);
      return t;
    }
  throw DataError(path, "", "the zip holds no .csv file");
}

}  // namespace fathom::eval
