// Reports: trace export (JSONL, CSV), reading JSONL back, usage tables, SVG heatmap, line plots.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "fathom/depth/trace.hpp"
#include "fathom/report/table.hpp"
#include "fathom/report/trace_io.hpp"
#include "fathom/report/usage_table.hpp"

using namespace fathom;
namespace fs = std::filesystem;

namespace {

struct TmpDir {
  fs::path path;
  TmpDir() {
    static std::atomic<int> n{0};
    path = fs::temp_directory_path() /
           ("fathom-report-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TmpDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path operator/(const std::string& s) const { return path / s; }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void spit(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}
std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// Adds one token the way a policy does (begin / open / end). exec and act are per-layer '0'/'1'.
// Executed layers get n_l = 1 + l + pos/2, Δ_l = n_l − n_{l−1}, τ_l = l/4; others stay NaN.
void add_token(Trace& t, int64_t seq, int64_t pos, Phase ph, int32_t id, const std::string& exec,
               const std::string& act, int exit_layer = -1) {
  REQUIRE(exec.size() == t.n_layers());
  t.set_sequence(seq);
  auto& r = t.begin(TokenInfo{0, pos, ph, id});
  r.embed_norm = 0.5f + float(pos);
  r.exit_layer = exit_layer;
  float prev = r.embed_norm;
  for (size_t l = 0; l < exec.size(); ++l) {
    auto& x = r.layers[l];
    x.executed = exec[l] == '1';
    x.activated = act[l] == '1';
    if (!x.executed) continue;
    x.norm = 1.0f + float(l) + 0.5f * float(pos);
    x.delta = x.norm - prev;
    x.tau = 0.25f * float(l);
    prev = x.norm;
    r.readout_layer = int(l);
  }
  t.end(0);
}

// 4 layers; PP: 3 tokens of sequence 0; RG: 2 tokens (the second exits at layer 2).
Trace sample_trace() {
  Trace t(4, true);
  add_token(t, 0, 0, Phase::PP, 7, "1111", "1111");
  add_token(t, 0, 1, Phase::PP, 8, "1111", "1010");
  add_token(t, 0, 2, Phase::PP, 9, "1111", "1000");
  add_token(t, 0, 3, Phase::RG, 10, "1111", "1101");
  add_token(t, 0, 4, Phase::RG, 11, "1100", "0100", 2);
  return t;
}

// Texts chosen to break naive writers: comma, quotes, newline, XML specials, bad UTF-8, Greek.
std::string sample_text(int32_t id) {
  switch (id) {
    case 7: return "a,b";
    case 8: return "say \"hi\"";
    case 9: return "line\nbreak";
    case 10: return "<&> 'x'";
    case 11: return std::string("\xE2\x82") + "!";  // truncated UTF-8 sequence
    default: return "Δ" + std::to_string(id);
  }
}

bool same_float(float a, float b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

// Minimal RFC 4180 reader: rows of fields, quotes handled (embedded commas/quotes/newlines).
std::vector<std::vector<std::string>> parse_csv(const std::string& s) {
  std::vector<std::vector<std::string>> rows(1);
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (quoted) {
      if (c == '"' && i + 1 < s.size() && s[i + 1] == '"') field += '"', ++i;
      else if (c == '"') quoted = false;
      else field += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().push_back(field), field.clear();
    } else if (c == '\n') {
      rows.back().push_back(field), field.clear();
      rows.emplace_back();
    } else {
      field += c;
    }
  }
  if (rows.back().empty()) rows.pop_back();
  return rows;
}

}  // namespace

// ---- JSONL -------------------------------------------------------------------------------------

TEST_CASE("trace JSONL: one exact line, NaN as null, text escaped") {
  Trace t(2, true);
  add_token(t, 3, 0, Phase::PP, 5, "10", "10");
  const std::string line = report::trace_record_json(t.records()[0], [](int32_t) {
    return std::string("q\"\\\n\x01");
  });
  CHECK(line ==
        "{\"sequence\":3,\"position\":0,\"phase\":\"PP\",\"token\":5,"
        "\"text\":\"q\\\"\\\\\\n\\u0001\",\"exit_layer\":-1,\"readout_layer\":0,"
        "\"embed_norm\":0.5,\"executed\":[true,false],\"activated\":[true,false],"
        "\"norm\":[1,null],\"delta\":[0.5,null],\"tau\":[0,null]}");
  // Without a text callback there is no "text" key at all.
  const auto bare = report::trace_record_json(t.records()[0]);
  CHECK(bare.find("\"text\"") == std::string::npos);
  CHECK(nlohmann::json::parse(bare)["token"] == 5);
}

TEST_CASE("trace JSONL: every field of every record") {
  const Trace t = sample_trace();
  std::ostringstream os;
  report::write_trace_jsonl(os, t.records(), sample_text);
  const auto lines = lines_of(os.str());
  REQUIRE(lines.size() == 5);
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto j = nlohmann::json::parse(lines[i]);  // each line is valid JSON on its own
    const auto& r = t.records()[i];
    CHECK(j["sequence"] == r.sequence);
    CHECK(j["position"] == r.position);
    CHECK(j["phase"] == (i < 3 ? "PP" : "RG"));
    CHECK(j["token"] == r.token);
    CHECK(j["exit_layer"] == r.exit_layer);
    CHECK(j["readout_layer"] == r.readout_layer);
    CHECK(j["embed_norm"].get<double>() == doctest::Approx(r.embed_norm));
    for (const char* k : {"executed", "activated", "norm", "delta", "tau"})
      REQUIRE(j[k].size() == 4);
    for (size_t l = 0; l < 4; ++l) {
      const auto& x = r.layers[l];
      CHECK(j["executed"][l].get<bool>() == x.executed);
      CHECK(j["activated"][l].get<bool>() == x.activated);
      if (x.executed) {
        CHECK(float(j["norm"][l].get<double>()) == x.norm);
        CHECK(float(j["delta"][l].get<double>()) == x.delta);
        CHECK(float(j["tau"][l].get<double>()) == x.tau);
      } else {
        CHECK(j["norm"][l].is_null());
        CHECK(j["delta"][l].is_null());
        CHECK(j["tau"][l].is_null());
      }
    }
  }
  CHECK(nlohmann::json::parse(lines[4])["exit_layer"] == 2);
  CHECK(nlohmann::json::parse(lines[0])["text"] == "a,b");
  CHECK(nlohmann::json::parse(lines[2])["text"] == "line\nbreak");
  // Each byte of the broken sequence becomes U+FFFD.
  CHECK(nlohmann::json::parse(lines[4])["text"] == "\xEF\xBF\xBD\xEF\xBF\xBD!");
}

TEST_CASE("trace JSONL: write to a file and read back, field for field") {
  TmpDir dir;
  const Trace t = sample_trace();
  report::write_trace_jsonl(dir / "t.jsonl", t, sample_text);
  const auto f = report::read_trace_jsonl(dir / "t.jsonl");
  CHECK(f.n_layers == 4);
  REQUIRE(f.records.size() == t.records().size());
  REQUIRE(f.texts.size() == f.records.size());
  for (size_t i = 0; i < f.records.size(); ++i) {
    const auto &a = t.records()[i], &b = f.records[i];
    CHECK(a.sequence == b.sequence);
    CHECK(a.position == b.position);
    CHECK(a.phase == b.phase);
    CHECK(a.token == b.token);
    CHECK(a.exit_layer == b.exit_layer);
    CHECK(a.readout_layer == b.readout_layer);
    CHECK(same_float(a.embed_norm, b.embed_norm));
    for (size_t l = 0; l < 4; ++l) {
      CHECK(a.layers[l].executed == b.layers[l].executed);
      CHECK(a.layers[l].activated == b.layers[l].activated);
      CHECK(same_float(a.layers[l].norm, b.layers[l].norm));
      CHECK(same_float(a.layers[l].delta, b.layers[l].delta));
      CHECK(same_float(a.layers[l].tau, b.layers[l].tau));
    }
    REQUIRE(f.texts[i].has_value());
    if (a.token != 11) CHECK(*f.texts[i] == sample_text(a.token));
  }
  // The reconstructed Trace has the same usage as the original.
  const Trace back = f.to_trace();
  for (Phase p : {Phase::PP, Phase::RG}) {
    CHECK(back.usage(p).tokens == t.usage(p).tokens);
    CHECK(back.usage(p).activated == t.usage(p).activated);
    CHECK(back.usage(p).executed == t.usage(p).executed);
  }
  CHECK(f.token_text()(8) == "say \"hi\"");
  CHECK(f.token_text()(999) == "");
}

TEST_CASE("trace JSONL: floats round-trip exactly") {
  Trace t(3, true);
  auto& r = t.begin(TokenInfo{0, 0, Phase::RG, 1});
  const float vals[3] = {0.1f, -1.17549435e-38f, 3.40282347e+38f};
  r.embed_norm = 1.0f / 3.0f;
  for (size_t l = 0; l < 3; ++l) {
    r.layers[l].executed = true;
    r.layers[l].norm = vals[l];
    r.layers[l].delta = vals[(l + 1) % 3];
    r.layers[l].tau = std::nextafter(vals[l], 0.0f);
  }
  t.end(0);
  std::stringstream ss;
  report::write_trace_jsonl(ss, t.records());
  const auto f = report::read_trace_jsonl(ss);
  REQUIRE(f.records.size() == 1);
  CHECK(!f.texts[0].has_value());
  CHECK(f.records[0].embed_norm == 1.0f / 3.0f);
  for (size_t l = 0; l < 3; ++l) {
    CHECK(f.records[0].layers[l].norm == vals[l]);
    CHECK(f.records[0].layers[l].delta == vals[(l + 1) % 3]);
    CHECK(f.records[0].layers[l].tau == std::nextafter(vals[l], 0.0f));
  }
}

namespace {
DataError read_error(const std::string& content) {
  TmpDir dir;
  spit(dir / "bad.jsonl", content);
  try {
    report::read_trace_jsonl(dir / "bad.jsonl");
  } catch (const DataError& e) {
    CHECK(e.file() == (dir / "bad.jsonl").string());
    return e;
  }
  FAIL("no DataError for: " << content);
  throw std::logic_error("unreachable");
}
}  // namespace

TEST_CASE("trace JSONL: malformed input gives DataError with file, line and field") {
  Trace t(2, true);
  add_token(t, 0, 0, Phase::PP, 5, "11", "10");
  add_token(t, 0, 1, Phase::RG, 6, "11", "11");
  std::ostringstream os;
  report::write_trace_jsonl(os, t.records());
  const auto good = lines_of(os.str());
  auto replace = [](std::string s, const std::string& from, const std::string& to) {
    const auto at = s.find(from);
    REQUIRE(at != std::string::npos);
    return s.replace(at, from.size(), to);
  };

  auto e = read_error(good[0] + "\n{\"sequence\": 0,\n");
  CHECK(e.field() == "line 2");
  CHECK(e.reason().find("invalid JSON") != std::string::npos);

  e = read_error(good[0] + "\n\n" + replace(good[1], ",\"tau\":[0,0.25]", "") + "\n");
  CHECK(e.field() == "line 3: tau");  // blank line 2 is skipped but counted
  CHECK(e.reason() == "missing");

  e = read_error(replace(good[0], "\"PP\"", "\"XX\""));
  CHECK(e.field() == "line 1: phase");

  e = read_error(replace(good[0], "\"norm\":[1,2]", "\"norm\":[1,\"2\"]"));
  CHECK(e.field() == "line 1: norm[1]");

  e = read_error(replace(good[0], "\"tau\":[0,0.25]", "\"tau\":[0]"));
  CHECK(e.field() == "line 1: tau");

  e = read_error(replace(good[0], "\"position\":0", "\"position\":0.5"));
  CHECK(e.field() == "line 1: position");

  e = read_error(replace(good[0], "\"executed\":[true,true]", "\"executed\":[1,true]"));
  CHECK(e.field() == "line 1: executed[0]");

  // Layer counts must agree between lines.
  Trace t3(3, true);
  add_token(t3, 0, 0, Phase::PP, 5, "111", "111");
  e = read_error(good[0] + "\n" + report::trace_record_json(t3.records()[0]) + "\n");
  CHECK(e.field() == "line 2: executed");

  e = read_error("[1,2,3]\n");
  CHECK(e.field() == "line 1");

  CHECK_THROWS_AS(report::read_trace_jsonl(fs::path("/nonexistent/fathom/t.jsonl")), IoError);
}

TEST_CASE("TraceJsonlWriter: every record is on disk as soon as it is synced") {
  TmpDir dir;
  const fs::path p = dir / "live.jsonl";
  Trace t(4, true);
  report::TraceJsonlWriter w(p, sample_text);
  CHECK(slurp(p).empty());
  add_token(t, 0, 0, Phase::PP, 7, "1111", "1111");
  add_token(t, 0, 1, Phase::PP, 8, "1111", "1010");
  w.sync(t);
  CHECK(lines_of(slurp(p)).size() == 2);  // flushed while the writer is still open
  w.sync(t);                               // nothing new: nothing written twice
  CHECK(lines_of(slurp(p)).size() == 2);
  add_token(t, 0, 2, Phase::RG, 9, "1111", "1000");
  w.sync(t);
  CHECK(w.written() == 3);
  auto f = report::read_trace_jsonl(p);
  REQUIRE(f.records.size() == 3);
  CHECK(f.records[2].phase == Phase::RG);
  CHECK(*f.texts[2] == "line\nbreak");

  t.clear();
  add_token(t, 1, 0, Phase::PP, 10, "1111", "1111");
  CHECK_THROWS_AS(w.sync(t), UsageError);  // fewer records than written: cleared
  w.restart();
  w.sync(t);
  f = report::read_trace_jsonl(p);
  REQUIRE(f.records.size() == 4);
  CHECK(f.records[3].sequence == 1);

  // Append mode continues a file.
  {
    report::TraceJsonlWriter w2(p, {}, true);
    w2.write(t.records()[0]);
  }
  CHECK(report::read_trace_jsonl(p).records.size() == 5);

  Trace no_records(4, false);
  CHECK_THROWS_AS(w.sync(no_records), UsageError);
  CHECK_THROWS_AS(report::TraceJsonlWriter(dir / "no/such/dir/x.jsonl"), IoError);
}

// ---- CSV ---------------------------------------------------------------------------------------

TEST_CASE("trace CSV: one row per token x layer, quoting, NaN empty") {
  const Trace t = sample_trace();
  std::ostringstream os;
  report::write_trace_csv(os, t.records(), sample_text);
  const auto rows = parse_csv(os.str());
  REQUIRE(rows.size() == 1 + 5 * 4);
  CHECK(rows[0] == std::vector<std::string>{"sequence", "position", "phase", "token", "text",
                                            "layer", "executed", "activated", "norm", "delta",
                                            "tau"});
  for (size_t i = 0; i < 5; ++i)
    for (size_t l = 0; l < 4; ++l) {
      const auto& row = rows[1 + i * 4 + l];
      const auto& r = t.records()[i];
      const auto& x = r.layers[l];
      REQUIRE(row.size() == 11);
      CHECK(row[0] == std::to_string(r.sequence));
      CHECK(row[1] == std::to_string(r.position));
      CHECK(row[2] == phase_name(r.phase));
      CHECK(row[3] == std::to_string(r.token));
      if (r.token != 11) CHECK(row[4] == sample_text(r.token));
      CHECK(row[5] == std::to_string(l));
      CHECK(row[6] == (x.executed ? "1" : "0"));
      CHECK(row[7] == (x.activated ? "1" : "0"));
      if (x.executed) {
        CHECK(std::stof(row[8]) == x.norm);
        CHECK(std::stof(row[9]) == x.delta);
        CHECK(std::stof(row[10]) == x.tau);
      } else {
        CHECK(row[8].empty());
        CHECK(row[9].empty());
        CHECK(row[10].empty());
      }
    }
  // The raw text shows the RFC 4180 quoting itself.
  const std::string s = os.str();
  CHECK(s.find(",\"a,b\",") != std::string::npos);
  CHECK(s.find(",\"say \"\"hi\"\"\",") != std::string::npos);
  CHECK(s.find(",\"line\nbreak\",") != std::string::npos);
  // Without a callback the text column is empty.
  std::ostringstream bare;
  report::write_trace_csv(bare, t.records());
  CHECK(parse_csv(bare.str())[1][4].empty());
}

TEST_CASE("csv_field quoting rules") {
  CHECK(report::csv_field("plain") == "plain");
  CHECK(report::csv_field("") == "");
  CHECK(report::csv_field("a,b") == "\"a,b\"");
  CHECK(report::csv_field("a\"b") == "\"a\"\"b\"");
  CHECK(report::csv_field("a\r\nb") == "\"a\r\nb\"");
  CHECK(report::csv_field(" lead") == "\" lead\"");
}

// ---- usage table ---------------------------------------------------------------------------------

TEST_CASE("usage table: numbers against hand-computed usage") {
  const Trace t = sample_trace();
  // PP activated: L0 3/3, L1 1/3, L2 2/3, L3 1/3 → mean 7/12. RG activated: 1/2, 1, 0, 1/2 →
  // mean 1/2; RG executed: 1, 1, 1/2, 1/2 → mean 3/4.
  const auto pp = t.usage(Phase::PP), rg = t.usage(Phase::RG);
  CHECK(pp.tokens == 3);
  CHECK(rg.tokens == 2);
  CHECK(pp.mean_activated() == doctest::Approx(7.0 / 12));
  const std::string text = report::usage_text(t);
  const auto lines = lines_of(text);
  REQUIRE(lines.size() == 2 + 4 + 1 + 2);
  CHECK(lines[0] == "layer   PP activated %  RG activated %  PP executed %  RG executed %");
  CHECK(lines[2] == "0                100.0            50.0          100.0          100.0");
  CHECK(lines[3] == "1                 33.3           100.0          100.0          100.0");
  CHECK(lines[4] == "2                 66.7             0.0          100.0           50.0");
  CHECK(lines[5] == "3                 33.3            50.0          100.0           50.0");
  CHECK(lines[6].find_first_not_of('-') == std::string::npos);
  CHECK(lines[7] == "mean              58.3            50.0          100.0           75.0");
  CHECK(lines[8] == "tokens               3               2              3              2");

  // The same numbers recomputed from records.
  const auto rr = report::record_usage(t.records(), 4, Phase::RG);
  CHECK(rr.activated == rg.activated);
  CHECK(rr.executed == rg.executed);
  CHECK(rr.tokens == 2);

  const auto csv = parse_csv(report::usage_csv(t));
  REQUIRE(csv.size() == 1 + 4 + 2);
  CHECK(csv[0] == std::vector<std::string>{"layer", "pp_activated", "rg_activated",
                                           "pp_executed", "rg_executed"});
  CHECK(std::stod(csv[2][1]) == doctest::Approx(1.0 / 3));
  CHECK(std::stod(csv[3][4]) == 0.5);
  CHECK(csv[5][0] == "mean");
  CHECK(std::stod(csv[5][1]) == doctest::Approx(7.0 / 12));
  CHECK(std::stod(csv[5][4]) == 0.75);
  CHECK(csv[6] == std::vector<std::string>{"tokens", "3", "2", "3", "2"});
}

TEST_CASE("usage table: a phase without tokens shows '-'") {
  Trace t(2, true);
  add_token(t, 0, 0, Phase::PP, 5, "11", "10");
  const auto lines = lines_of(report::usage_text(t));
  CHECK(lines[2] == "0                100.0               -          100.0              -");
  CHECK(lines[6] == "tokens               1               0              1              0");
  CHECK(parse_csv(report::usage_csv(t))[1][2].empty());
}

TEST_CASE("TextTable alignment and errors") {
  report::TextTable t({"name", "value"});
  t.add_row({"alpha", "0.8"});
  t.add_row({"Δ", "-12.25"});
  CHECK(t.str() == "name    value\n-------------\nalpha     0.8\nΔ      -12.25\n");
  CHECK(t.csv() == "name,value\nalpha,0.8\nΔ,-12.25\n");
  CHECK_THROWS_AS(t.add_row({"x"}), UsageError);
  CHECK(report::TextTable::looks_numeric("1e-3"));
  CHECK(report::TextTable::looks_numeric("97.5%"));
  CHECK(!report::TextTable::looks_numeric("1.2.3"));
  CHECK(!report::TextTable::looks_numeric("e5"));
}
