#pragma once
// Typed errors. Every error about input names the file, the field (tensor, JSON key, line...) and
// what was wrong, so that a researcher can fix the input without a debugger.
#include <stdexcept>
#include <string>
#include <utility>

namespace fathom {

class Error : public std::runtime_error {
 public:
  Error(std::string file, std::string field, std::string reason)
      : std::runtime_error(compose(file, field, reason)),
        file_(std::move(file)), field_(std::move(field)), reason_(std::move(reason)) {}
  const std::string& file() const noexcept { return file_; }
  const std::string& field() const noexcept { return field_; }
  const std::string& reason() const noexcept { return reason_; }

 private:
  // "file: field: reason"; without a file (an argument, text in memory) "field: reason".
  static std::string compose(const std::string& file, const std::string& field,
                             const std::string& reason) {
    std::string s = file;
    if (!field.empty()) s += (s.empty() ? "" : ": ") + field;
    return s.empty() ? reason : s + ": " + reason;
  }
  std::string file_, field_, reason_;
};

struct IoError : Error { using Error::Error; };           // cannot open / map / read a file
struct FormatError : Error { using Error::Error; };       // malformed checkpoint or data file
struct ConfigError : Error { using Error::Error; };       // config.json missing/contradictory fields
struct TokenizerError : Error { using Error::Error; };    // malformed tokenizer files, bad ids
struct UnsupportedError : Error { using Error::Error; };  // valid input fathom does not implement
struct DataError : Error { using Error::Error; };         // benchmark data (CSV, JSONL) problems
struct UsageError : Error { using Error::Error; };        // API misuse (bad arguments)

}  // namespace fathom
