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

#include "fathom/model/trace.hpp"
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

TEST_CASE("trace JSONL: a number beyond double is a DataError (found by fuzzing)") {
  // nlohmann throws out_of_range, not parse_error, for 1e999: it escaped the reader untyped.
  auto e = read_error("{\"sequence\":0,\"position\":1e999}\n");
  CHECK(e.field() == "line 1");
  CHECK(e.reason().find("invalid JSON") != std::string::npos);
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

// ---- usage table -------------------------------------------------------------------------------

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

// ---- SVG ---------------------------------------------------------------------------------------

#include "fathom/report/heatmap.hpp"
#include "fathom/report/line_plot.hpp"

namespace {

size_t count(const std::string& s, const std::string& part) {
  size_t n = 0;
  for (size_t at = s.find(part); at != std::string::npos; at = s.find(part, at + 1)) ++n;
  return n;
}

// Minimal XML well-formedness check: balanced tags, quoted attributes, only the five named
// entities or numeric ones, no raw '<' or '&' in text, no forbidden control characters.
bool well_formed(const std::string& s, std::string& why) {
  std::vector<std::string> stack;
  size_t i = 0;
  auto entity_ok = [&](size_t at) {
    const size_t semi = s.find(';', at);
    if (semi == std::string::npos) return false;
    const std::string e = s.substr(at + 1, semi - at - 1);
    return e == "amp" || e == "lt" || e == "gt" || e == "quot" || e == "apos" ||
           (e.size() > 1 && e[0] == '#');
  };
  if (s.rfind("<?xml", 0) == 0) i = s.find("?>") + 2;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 && c != '\n' && c != '\t' && c != '\r') return why = "control char", false;
    if (c == '&') {
      if (!entity_ok(i)) return why = "bad entity at " + std::to_string(i), false;
      ++i;
      continue;
    }
    if (c != '<') { ++i; continue; }
    const size_t end = s.find('>', i);
    if (end == std::string::npos) return why = "unclosed tag", false;
    std::string tag = s.substr(i + 1, end - i - 1);
    // quotes in attributes must pair, and no '<' inside a tag
    if (count(tag, "\"") % 2 || tag.find('<') != std::string::npos)
      return why = "bad tag: " + tag, false;
    for (size_t q = tag.find('&'); q != std::string::npos; q = tag.find('&', q + 1))
      if (!entity_ok(i + 1 + q)) return why = "bad entity in tag: " + tag, false;
    if (tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (stack.empty() || stack.back() != name)
        return why = "mismatched </" + name + ">", false;
      stack.pop_back();
    } else if (tag.back() != '/') {
      stack.push_back(tag.substr(0, tag.find_first_of(" \n\t")));
    }
    i = end + 1;
  }
  if (!stack.empty()) return why = "unclosed <" + stack.back() + ">", false;
  return true;
}

}  // namespace

TEST_CASE("xml_escape and visible_text") {
  CHECK(report::xml_escape("a<b>&\"c'") == "a&lt;b&gt;&amp;&quot;c&apos;");
  CHECK(report::xml_escape(std::string("x\x01y\xFFz")) == "x\\x01y\\xFFz");
  CHECK(report::visible_text(" a\nb\t") == "\u00B7a\u21B5b\u21E5");
  CHECK(report::visible_text("abcdefgh", 5) == "abcd\u2026");
  CHECK(report::visible_text("\xCE\x94\xCE\x94\xCE\x94", 3) == "\xCE\x94\xCE\x94\xCE\x94");
  CHECK(report::visible_text(std::string("\xE2\x82"), 0) == "\\xE2\\x82");
  CHECK(report::visible_text("a b\nc", 0, false) == "a b c");
  std::string why;
  CHECK(!well_formed("<a><b></a>", why));  // the checker itself can fail
  CHECK(!well_formed("<a>x & y</a>", why));
  CHECK(well_formed("<a x=\"1\"><b/>t &amp; u</a>", why));
}

TEST_CASE("heatmap: well-formed SVG with one cell per token x layer and escaped text") {
  const Trace t = sample_trace();
  report::HeatmapOptions o;
  o.model = "tiny & <test>";
  o.alpha = 0.8;
  const std::string svg = report::heatmap_svg(t, o, sample_text);
  std::string why;
  CHECK_MESSAGE(well_formed(svg, why), why);
  // 5 tokens × 4 layers: 7 + 4 activated, 7 void, 2 not executed (the last token exited).
  CHECK(count(svg, "<rect class=\"a\"") == 11);
  CHECK(count(svg, "<rect class=\"v\"") == 7);
  CHECK(count(svg, "<rect class=\"x\"") == 2);
  CHECK(count(svg, "<title>") == 20);  // one tooltip per cell
  CHECK(svg.find("tiny &amp; &lt;test&gt;") != std::string::npos);
  CHECK(svg.find("\u03B1 = 0.80") != std::string::npos);
  CHECK(svg.find("PP: 58.3% of layers used (3 tokens)") != std::string::npos);
  CHECK(svg.find("RG: 50.0% of layers used (2 tokens)") != std::string::npos);
  // Token text along the axis: escaped, whitespace visible, bad bytes as \xNN.
  CHECK(svg.find(">say\u00B7&quot;hi&quot;</text>") != std::string::npos);
  CHECK(svg.find(">line\u21B5break</text>") != std::string::npos);
  CHECK(svg.find(">&lt;&amp;&gt;\u00B7&apos;x&apos;</text>") != std::string::npos);
  CHECK(svg.find(">\\xE2\\x82!</text>") != std::string::npos);
  CHECK(svg.find("Only the first") == std::string::npos);  // nothing was cut
  // Layer numbers 0..3 on the axis.
  for (int l = 0; l < 4; ++l)
    CHECK(svg.find("text-anchor=\"end\">" + std::to_string(l) + "</text>") != std::string::npos);
}

TEST_CASE("heatmap: token cap, continuous colours, errors") {
  Trace t(3, true);
  for (int i = 0; i < 30; ++i)
    add_token(t, i < 20 ? 0 : 1, i, i < 10 ? Phase::PP : Phase::RG, 5, "111", "101");
  report::HeatmapOptions o;
  o.max_tokens = 8;
  o.continuous = true;
  o.tooltips = false;
  const std::string svg = report::heatmap_svg(t, o);
  std::string why;
  CHECK_MESSAGE(well_formed(svg, why), why);
  CHECK(count(svg, "<rect class=\"k\"") == 2 * 8 * 3);  // 8 tokens per phase drawn
  CHECK(count(svg, "<title>") == 0);
  CHECK(svg.find("first 8 of 10 tokens") != std::string::npos);
  CHECK(svg.find("first 8 of 20 tokens") != std::string::npos);
  CHECK(svg.find("Only the first 8 tokens") != std::string::npos);
  CHECK(svg.find(">#5</text>") != std::string::npos);  // no text callback: the id
  // Diverging scale: Δ/τ = 0 orange, 1 white, 2 and τ = 0 with Δ ≥ 0 blue.
  CHECK(report::ratio_colour(-1, 1).hex() == "#d95f02");
  CHECK(report::ratio_colour(1, 1).hex() == "#ffffff");
  CHECK(report::ratio_colour(5, 1).hex() == "#1b4f9c");
  CHECK(report::ratio_colour(0.0, 0.0).hex() == "#1b4f9c");
  CHECK(report::ratio_colour(-0.1, 0.0).hex() == "#d95f02");
  o.max_tokens = 0;
  CHECK_THROWS_AS(report::heatmap_svg(t, o), UsageError);
  CHECK_THROWS_AS(report::heatmap_svg(Trace(3, false)), UsageError);
  // An empty phase still gives a valid figure.
  Trace pp_only(2, true);
  add_token(pp_only, 0, 0, Phase::PP, 1, "11", "11");
  const std::string one = report::heatmap_svg(pp_only);
  CHECK(well_formed(one, why));
  CHECK(one.find("no tokens") != std::string::npos);
}

TEST_CASE("line plot: series, legend, ticks, gaps, log-x, errors") {
  std::vector<report::Series> s = {{"acc <MMLU>", {0, 5, 10}, {0, 0.5, 1}},
                                   {"usage", {0, 5, 10}, {1, NAN, 0.2}}};
  report::LinePlotOptions o;
  o.title = "accuracy & usage";
  o.x_label = "\u03B1";
  o.x_min = 0, o.x_max = 10, o.y_min = 0, o.y_max = 1;
  const std::string svg = report::line_plot_svg(s, o);
  std::string why;
  CHECK_MESSAGE(well_formed(svg, why), why);
  CHECK(count(svg, "<polyline") == 1);  // the second series is broken by NaN into single points
  CHECK(count(svg, "<circle") == 5);    // markers for the 5 finite points
  CHECK(svg.find(">acc &lt;MMLU&gt;</text>") != std::string::npos);
  CHECK(svg.find(">accuracy &amp; usage</text>") != std::string::npos);
  for (const char* tick : {">0</text>", ">2</text>", ">10</text>", ">0.0</text>", ">1.0</text>"})
    CHECK_MESSAGE(svg.find(tick) != std::string::npos, tick);
  // The first series runs from the lower-left to the upper-right corner of the plot area.
  const size_t a = svg.find("<rect class=\"area\"");
  REQUIRE(a != std::string::npos);
  auto attr = [&](size_t from, const std::string& name) {
    const size_t at = svg.find(" " + name + "=\"", from) + name.size() + 3;
    return std::stod(svg.substr(at, svg.find('"', at) - at));
  };
  const double x = attr(a, "x"), y = attr(a, "y"), w = attr(a, "width"), h = attr(a, "height");
  const size_t p = svg.find("points=\"", svg.find("<polyline")) + 8;
  std::istringstream pts(svg.substr(p, svg.find('"', p) - p));
  std::vector<std::pair<double, double>> xy;
  for (std::string pair; pts >> pair;)
    xy.emplace_back(std::stod(pair.substr(0, pair.find(','))),
                    std::stod(pair.substr(pair.find(',') + 1)));
  REQUIRE(xy.size() == 3);
  CHECK(xy[0].first == doctest::Approx(x).epsilon(0.01));
  CHECK(xy[0].second == doctest::Approx(y + h).epsilon(0.01));
  CHECK(xy[1].first == doctest::Approx(x + w / 2).epsilon(0.01));
  CHECK(xy[2].first == doctest::Approx(x + w).epsilon(0.01));
  CHECK(xy[2].second == doctest::Approx(y).epsilon(0.01));

  report::LinePlotOptions lo;
  lo.log_x = true;
  const std::vector<report::Series> r = {{"rank", {1, 10, 100}, {3, 2, 1}}};
  const std::string log_svg = report::line_plot_svg(r, lo);
  CHECK(well_formed(log_svg, why));
  for (const char* tick : {">1</text>", ">10</text>", ">100</text>", ">2</text>"})
    CHECK_MESSAGE(log_svg.find(tick) != std::string::npos, tick);
  // Log-x maps 10 halfway between 1 and 100.
  const size_t lp = log_svg.find("points=\"") + 8;
  std::istringstream lpts(log_svg.substr(lp, log_svg.find('"', lp) - lp));
  std::vector<double> lx;
  for (std::string pair; lpts >> pair;) lx.push_back(std::stod(pair.substr(0, pair.find(','))));
  REQUIRE(lx.size() == 3);
  CHECK(lx[1] - lx[0] == doctest::Approx(lx[2] - lx[1]).epsilon(0.01));

  const std::vector<report::Series> bad_log = {{"r", {0, 1}, {1, 2}}};
  CHECK_THROWS_AS(report::line_plot_svg(bad_log, lo), UsageError);
  const std::vector<report::Series> ragged = {{"r", {0, 1}, {1}}};
  CHECK_THROWS_AS(report::line_plot_svg(ragged), UsageError);
  CHECK(well_formed(report::line_plot_svg({}), why));  // no data: empty axes

  TmpDir dir;
  report::write_line_plot_svg(dir / "p.svg", s, o);
  CHECK(slurp(dir / "p.svg") == svg);
}

// ---- end to end: a real LAC trace from stories260K ----------------------------------------------

#include "fathom/core/shared_path.hpp"
#include "fathom/depth/lac.hpp"
#include "fathom/model/generate.hpp"
#include "fathom/model/load.hpp"

TEST_CASE("reports of a real LAC run (stories260K): JSONL round trip, usage, heatmap") {
  const fs::path bin = shared_dir() / "models/stories260K/stories260K.bin";
  if (!fs::exists(bin)) {
    MESSAGE("skipped: " << bin << " not found");
    return;
  }
  const auto model = load_model(bin);
  const size_t L = size_t(model->n_layers());
  Trace trace(L, true);
  LAC lac(0.8, LacMode::TraceOnly);
  Session s(*model);
  s.set_trace(&trace);
  const std::vector<int32_t> prompt = {1, 403, 407, 261, 378};
  GenerateOptions g;
  g.max_new_tokens = 12;
  g.stop_on_eos = false;
  TmpDir dir;
  report::TraceJsonlWriter live(dir / "live.jsonl");
  generate(s, prompt, g, lac, [&](int32_t) {
    live.sync(trace);
    return true;
  });
  live.sync(trace);
  const auto pp = trace.usage(Phase::PP), rg = trace.usage(Phase::RG);
  CHECK(pp.tokens == prompt.size());
  CHECK(rg.tokens == 11);  // the 12th token is chosen but never fed back
  const auto f = report::read_trace_jsonl(dir / "live.jsonl");
  CHECK(f.n_layers == L);
  REQUIRE(f.records.size() == trace.records().size());
  const Trace back = f.to_trace();
  CHECK(back.usage(Phase::PP).activated == pp.activated);
  CHECK(back.usage(Phase::RG).activated == rg.activated);
  // Usage row in the table equals the trace's own mean.
  const auto lines = lines_of(report::usage_text(trace));
  CHECK(lines[lines.size() - 2].find(report::fixed(100 * pp.mean_activated(), 1)) !=
        std::string::npos);
  const std::string svg = report::heatmap_svg(trace);
  std::string why;
  CHECK_MESSAGE(well_formed(svg, why), why);
  CHECK(count(svg, "<rect class=\"a\"") + count(svg, "<rect class=\"v\"") +
            count(svg, "<rect class=\"x\"") ==
        (prompt.size() + 11) * L);
}
