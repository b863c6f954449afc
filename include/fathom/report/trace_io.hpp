#pragma once
// Trace export and import.
//
// JSON Lines (one object per token, in trace order):
//   {"sequence":0,"position":3,"phase":"PP","token":450,"text":" the","exit_layer":-1,
//    "readout_layer":4,"embed_norm":1.25,"executed":[true,...],"activated":[true,false,...],
//    "norm":[...],"delta":[...],"tau":[...]}
// The five arrays have one entry per layer. NaN (a value not computed) and ±inf are written as
// null. "text" is present only when a TokenText callback is given; invalid UTF-8 in it becomes
// U+FFFD. Floats are written as the shortest decimal that reads back to the same float.
//
// CSV (one row per token × layer, header first):
//   sequence,position,phase,token,text,layer,executed,activated,norm,delta,tau
// executed/activated are 0/1, NaN is an empty field, text is quoted per RFC 4180 when needed.
//
// TraceJsonlWriter appends and flushes every record as it comes, so an interrupted run keeps
// every token it finished. read_trace_jsonl() reads a file back (typed DataError on bad input).
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <istream>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fathom/core/error.hpp"
#include "fathom/model/trace.hpp"
#include "fathom/report/table.hpp"
#include "fathom/report/text.hpp"

namespace fathom::report {

// ---- JSON Lines ------------------------------------------------------------------------------

// One record as a single JSON line (no trailing newline).
inline std::string trace_record_json(const TokenRecord& r, const TokenText& text = {}) {
  std::string s;
  s.reserve(64 + r.layers.size() * 48);
  s += "{\"sequence\":" + std::to_string(r.sequence);
  s += ",\"position\":" + std::to_string(r.position);
  s += ",\"phase\":\"";
  s += phase_name(r.phase);
  s += "\",\"token\":" + std::to_string(r.token);
  if (text) s += ",\"text\":" + detail::json_string(text(r.token));
  s += ",\"exit_layer\":" + std::to_string(r.exit_layer);
  s += ",\"readout_layer\":" + std::to_string(r.readout_layer);
  s += ",\"embed_norm\":" + detail::json_number(r.embed_norm);
  auto array = [&](const char* name, auto get) {
    s += ",\"";
    s += name;
    s += "\":[";
    for (size_t l = 0; l < r.layers.size(); ++l) {
      if (l) s += ',';
      s += get(r.layers[l]);
    }
    s += ']';
  };
  array("executed", [](const LayerRecord& x) { return x.executed ? "true" : "false"; });
  array("activated", [](const LayerRecord& x) { return x.activated ? "true" : "false"; });
  array("norm", [](const LayerRecord& x) { return detail::json_number(x.norm); });
  array("delta", [](const LayerRecord& x) { return detail::json_number(x.delta); });
  array("tau", [](const LayerRecord& x) { return detail::json_number(x.tau); });
  s += '}';
  return s;
}

inline void write_trace_jsonl(std::ostream& os, std::span<const TokenRecord> records,
                              const TokenText& text = {}) {
  for (const auto& r : records) os << trace_record_json(r, text) << '\n';
}

namespace detail {
inline std::ofstream open_out(const std::filesystem::path& path, bool append = false) {
  std::ofstream f(path, std::ios::binary | (append ? std::ios::app : std::ios::trunc));
  if (!f) throw IoError(path.string(), "", "cannot open for writing");
  return f;
}
inline void check_written(std::ostream& f, const std::filesystem::path& path) {
  if (!f) throw IoError(path.string(), "", "write failed (disk full?)");
}
}  // namespace detail

inline void write_trace_jsonl(const std::filesystem::path& path,
                              std::span<const TokenRecord> records, const TokenText& text = {}) {
  auto f = detail::open_out(path);
  write_trace_jsonl(f, records, text);
  f.flush();
  detail::check_written(f, path);
}
namespace detail {
inline std::span<const TokenRecord> kept_records(const Trace& trace, const std::string& what) {
  if (!trace.keeps_records())
    throw UsageError(what, "trace", "keeps no per-token records; construct Trace(n_layers, true)");
  return trace.records();
}
}  // namespace detail

// Needs a Trace that keeps records (Trace(n_layers, true)); throws UsageError otherwise.
inline void write_trace_jsonl(const std::filesystem::path& path, const Trace& trace,
                              const TokenText& text = {}) {
  write_trace_jsonl(path, detail::kept_records(trace, path.string()), text);
}

// Appends records to a JSONL file as a run produces them, flushing after each one.
//   report::TraceJsonlWriter w("trace.jsonl", text);
//   ... after every forward pass / generated token:  w.sync(trace);
class TraceJsonlWriter {
 public:
  // append = false truncates an existing file; true continues it (e.g. a resumed run).
  explicit TraceJsonlWriter(std::filesystem::path path, TokenText text = {}, bool append = false)
      : path_(std::move(path)), text_(std::move(text)), out_(detail::open_out(path_, append)) {}

  // Writes one record as one line and flushes it.
  void write(const TokenRecord& r) {
    out_ << trace_record_json(r, text_) << '\n';
    out_.flush();
    detail::check_written(out_, path_);
    ++written_;
  }
  // Writes the trace's records that this writer has not seen yet (those after the last sync).
  void sync(const Trace& trace) {
    const auto recs = detail::kept_records(trace, path_.string());
    if (recs.size() < cursor_)
      throw UsageError(path_.string(), "trace",
                       "has fewer records than were already written (cleared?); call restart()");
    for (size_t i = cursor_; i < recs.size(); ++i) write(recs[i]);
    cursor_ = recs.size();
  }
  // After Trace::clear(): the next sync() starts again from the trace's first record.
  void restart() { cursor_ = 0; }

  size_t written() const { return written_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  TokenText text_;
  std::ofstream out_;
  size_t written_ = 0;
  size_t cursor_ = 0;  // records of the synced trace already written
};

// ---- reading JSONL back -----------------------------------------------------------------------

struct TraceFile {
  size_t n_layers = 0;
  std::vector<TokenRecord> records;
  std::vector<std::optional<std::string>> texts;  // [records] the "text" field, if present

  // Token id → text, from the texts in the file (for re-plotting); "" for ids never seen.
  TokenText token_text() const {
    auto m = std::make_shared<std::map<int32_t, std::string>>();
    for (size_t i = 0; i < records.size(); ++i)
      if (texts[i]) (*m)[records[i].token] = *texts[i];
    return [m](int32_t id) {
      auto it = m->find(id);
      return it == m->end() ? std::string() : it->second;
    };
  }
  // A Trace holding these records, with its usage counters recomputed from them.
  Trace to_trace() const {
    Trace t(n_layers, true);
    for (const auto& r : records) {
      t.set_sequence(r.sequence);
      auto& o = t.begin(TokenInfo{0, r.position, r.phase, r.token});
      o = r;
      t.end(0);
    }
    return t;
  }
};

namespace detail {

class JsonlReader {
 public:
  JsonlReader(std::string file) : file_(std::move(file)) {}

  void line(const std::string& line_text, size_t lineno, TraceFile& out) {
    line_ = lineno;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line_text);
    } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e999
      fail("", std::string("invalid JSON: ") + e.what());
    }
    if (!j.is_object()) fail("", "a trace line must be a JSON object");
    TokenRecord r;
    r.sequence = integer(j, "sequence");
    r.position = integer(j, "position");
    const auto& ph = field(j, "phase");
    if (ph == "PP") r.phase = Phase::PP;
    else if (ph == "RG") r.phase = Phase::RG;
    else fail("phase", "must be \"PP\" or \"RG\", got " + ph.dump());
    r.token = int32_t(integer(j, "token", INT32_MIN, INT32_MAX));
    r.exit_layer = int(integer(j, "exit_layer", -1, INT32_MAX));
    r.readout_layer = int(integer(j, "readout_layer", -1, INT32_MAX));
    r.embed_norm = number(field(j, "embed_norm"), "embed_norm");
    std::optional<std::string> text;
    if (auto it = j.find("text"); it != j.end()) {
      if (!it->is_string()) fail("text", "must be a string");
      text = it->get<std::string>();
    }

    const size_t n = array(j, "executed").size();
    if (out.records.empty()) out.n_layers = n;
    else if (n != out.n_layers)
      fail("executed", "has " + std::to_string(n) + " layers, earlier lines have " +
                           std::to_string(out.n_layers));
    r.layers.resize(n);
    for (const char* name : {"executed", "activated"}) {
      const auto& a = array(j, name);
      if (a.size() != n) fail(name, "has " + std::to_string(a.size()) + " entries, expected " +
                                        std::to_string(n));
      for (size_t l = 0; l < n; ++l) {
        if (!a[l].is_boolean()) fail(std::string(name) + "[" + std::to_string(l) + "]",
                                     "must be true or false");
        (name[0] == 'e' ? r.layers[l].executed : r.layers[l].activated) = a[l].get<bool>();
      }
    }
    for (const char* name : {"norm", "delta", "tau"}) {
      const auto& a = array(j, name);
      if (a.size() != n) fail(name, "has " + std::to_string(a.size()) + " entries, expected " +
                                        std::to_string(n));
      for (size_t l = 0; l < n; ++l) {
        const float v = number(a[l], std::string(name) + "[" + std::to_string(l) + "]");
        auto& x = r.layers[l];
        (name[0] == 'n' ? x.norm : name[0] == 'd' ? x.delta : x.tau) = v;
      }
    }
    out.records.push_back(std::move(r));
    out.texts.push_back(std::move(text));
  }

 private:
  [[noreturn]] void fail(const std::string& field, const std::string& reason) const {
    std::string f = "line " + std::to_string(line_);
    if (!field.empty()) f += ": " + field;
    throw DataError(file_, f, reason);
  }
  const nlohmann::json& field(const nlohmann::json& j, const char* name) const {
    auto it = j.find(name);
    if (it == j.end()) fail(name, "missing");
    return *it;
  }
  const nlohmann::json& array(const nlohmann::json& j, const char* name) const {
    const auto& a = field(j, name);
    if (!a.is_array()) fail(name, "must be an array (one entry per layer)");
    return a;
  }
  int64_t integer(const nlohmann::json& j, const char* name, int64_t lo = INT64_MIN,
                  int64_t hi = INT64_MAX) const {
    const auto& v = field(j, name);
    if (!v.is_number_integer()) fail(name, "must be an integer, got " + v.dump());
    const int64_t x = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)
                          ? (fail(name, "out of range"), 0)
                          : v.get<int64_t>();
    if (x < lo || x > hi) fail(name, "out of range: " + std::to_string(x));
    return x;
  }
  // A float or null (NaN).
  float number(const nlohmann::json& v, const std::string& name) const {
    if (v.is_null()) return NAN;
    if (!v.is_number()) fail(name, "must be a number or null, got " + v.dump());
    return float(v.get<double>());
  }

  std::string file_;
  size_t line_ = 0;
};

}  // namespace detail

// Reads JSON Lines written by write_trace_jsonl / TraceJsonlWriter. Blank lines are ignored.
// Throws DataError(file, "line N: field", reason) on a malformed line.
inline TraceFile read_trace_jsonl(std::istream& in, const std::string& name = "<stream>") {
  TraceFile out;
  detail::JsonlReader reader(name);
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    reader.line(line, lineno, out);
  }
  return out;
}

inline TraceFile read_trace_jsonl(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IoError(path.string(), "", "cannot open for reading");
  return read_trace_jsonl(f, path.string());
}

// ---- CSV --------------------------------------------------------------------------------------

inline constexpr const char* kTraceCsvHeader =
    "sequence,position,phase,token,text,layer,executed,activated,norm,delta,tau";

inline void write_trace_csv(std::ostream& os, std::span<const TokenRecord> records,
                            const TokenText& text = {}) {
  os << kTraceCsvHeader << '\n';
  std::string row;
  for (const auto& r : records) {
    // Everything up to the layer column is the same for the token's rows.
    const std::string head = std::to_string(r.sequence) + ',' + std::to_string(r.position) + ',' +
                             phase_name(r.phase) + ',' + std::to_string(r.token) + ',' +
                             (text ? csv_field(text(r.token)) : std::string()) + ',';
    for (size_t l = 0; l < r.layers.size(); ++l) {
      const auto& x = r.layers[l];
      row = head;
      row += std::to_string(l);
      row += x.executed ? ",1" : ",0";
      row += x.activated ? ",1," : ",0,";
      row += detail::float_text(x.norm) + ',' + detail::float_text(x.delta) + ',' +
             detail::float_text(x.tau);
      os << row << '\n';
    }
  }
}

inline void write_trace_csv(const std::filesystem::path& path,
                            std::span<const TokenRecord> records, const TokenText& text = {}) {
  auto f = detail::open_out(path);
  write_trace_csv(f, records, text);
  f.flush();
  detail::check_written(f, path);
}
inline void write_trace_csv(const std::filesystem::path& path, const Trace& trace,
                            const TokenText& text = {}) {
  write_trace_csv(path, detail::kept_records(trace, path.string()), text);
}

}  // namespace fathom::report
