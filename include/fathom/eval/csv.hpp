#pragma once
// RFC 4180 CSV records: fields separated by commas, optionally enclosed in double quotes; inside
// quotes, commas and line breaks are literal and a doubled quote ("") is one quote. Records end at
// LF or CRLF outside quotes. Each record remembers the line it started on, so a reader can name
// "line N" of the file in its errors (a record with an embedded newline spans several lines).
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/core/text_file.hpp"

namespace fathom::eval {

struct CsvRecord {
  size_t line = 0;  // 1-based line of the file where the record starts
  std::vector<std::string> fields;
};

// Parses a whole CSV text. `file` only names the source in errors. Malformed quoting (an
// unterminated quoted field, text after a closing quote) is a DataError naming the line.
inline std::vector<CsvRecord> parse_csv(std::string_view text, const std::string& file = {}) {
  std::vector<CsvRecord> out;
  size_t i = 0, line = 1;
  const size_t n = text.size();
  if (n >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") i = 3;  // UTF-8 byte-order mark
  while (i < n) {
    CsvRecord rec;
    rec.line = line;
    std::string field;
    bool end_of_record = false;
    while (!end_of_record) {
      field.clear();
      if (i < n && text[i] == '"') {  // quoted field
        const size_t open_line = line;
        ++i;
        for (;;) {
          if (i >= n)
            throw DataError(file, "line " + std::to_string(open_line),
                            "unterminated quoted field (field " +
                                std::to_string(rec.fields.size() + 1) + ")");
          const char c = text[i++];
          if (c == '"') {
            if (i < n && text[i] == '"') { field += '"'; ++i; continue; }
            break;
          }
          if (c == '\n') ++line;
          field += c;
        }
        if (i < n && text[i] != ',' && text[i] != '\n' && text[i] != '\r')
          throw DataError(file, "line " + std::to_string(line),
                          "unexpected character after closing quote (field " +
                              std::to_string(rec.fields.size() + 1) + ")");
      } else {
        while (i < n && text[i] != ',' && text[i] != '\n' && text[i] != '\r') field += text[i++];
      }
      rec.fields.push_back(field);
      if (i >= n) {
        end_of_record = true;
      } else if (text[i] == ',') {
        ++i;
      } else {  // \n or \r\n (a lone \r also ends the record)
        if (text[i] == '\r') ++i;
        if (i < n && text[i] == '\n') ++i;
        ++line;
        end_of_record = true;
      }
    }
    // A blank line is no record (common at the end of files).
    if (rec.fields.size() == 1 && rec.fields[0].empty()) continue;
    out.push_back(std::move(rec));
  }
  return out;
}

inline std::vector<CsvRecord> read_csv(const std::string& path) {
  return parse_csv(read_text_file(path), path);
}

}  // namespace fathom::eval
