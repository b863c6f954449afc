// The Jinja engine on its own: one case per construct and filter, compared with what
// transformers' Jinja environment renders (tests/fixtures/chat_templates/engine_cases.json,
// tools/gen_chat_template_fixtures.py), and one test per error type with its line and column.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "fathom/tokenizer/jinja/template.hpp"

namespace jinja = fathom::tok::jinja;
using ordered_json = nlohmann::ordered_json;

namespace {

std::string render(const std::string& tpl, const ordered_json& ctx = ordered_json::object(), jinja::Limits lim = {}) {
  return jinja::Template::parse(tpl, "test.jinja", lim).render_json(ctx.is_null() ? ordered_json::object() : ctx);
}

// The field ("line L, column C") of the error `f` throws as type E.
template <class E, class F>
std::string error_at(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.field();
  }
  return "no error";
}

}  // namespace

TEST_CASE("every engine case renders as transformers' Jinja environment does") {
  const auto path = std::filesystem::path(FATHOM_SOURCE_DIR) / "tests" / "fixtures" / "chat_templates" / "engine_cases.json";
  std::ifstream f(path);
  REQUIRE_MESSAGE(f.good(), "cannot open " << path.string());
  const ordered_json cases = ordered_json::parse(f);
  size_t n = 0;
  for (const auto& c : cases) {
    CAPTURE(c["name"].get<std::string>());
    CAPTURE(c["template"].get<std::string>());
    REQUIRE(c.contains("text"));
    CHECK(render(c["template"].get<std::string>(), c["context"]) == c["text"].get<std::string>());
    ++n;
  }
  CHECK(n >= 50);
}

TEST_CASE("syntax errors name the template, line and column") {
  using E = jinja::SyntaxError;
  CHECK(error_at<E>([] { render("ab\n{% if x %}"); }) == "line 2, column 4");             // missing endif
  CHECK(error_at<E>([] { render("{{ x "); }) == "line 1, column 1");                       // unclosed tag
  CHECK(error_at<E>([] { render("x\n  {{ 1 + }}"); }) == "line 2, column 10");             // bad expression
  CHECK(error_at<E>([] { render("{% frobnicate %}"); }) == "line 1, column 4");            // unknown statement
  CHECK(error_at<E>([] { render("{# never closed"); }) == "line 1, column 1");
  CHECK(error_at<E>([] { render("{{ 'abc }}"); }) == "line 1, column 4");                  // unterminated string
  CHECK(error_at<E>([] { render("{% for x in y %}{% endif %}"); }) == "line 1, column 20");
  CHECK(error_at<E>([] { render("{{ x ! y }}"); }) == "line 1, column 6");
  CHECK(error_at<E>([] { render("{{ (1 }}"); }) == "line 1, column 8");
  CHECK(error_at<E>([] { render(std::string("{{ '\xff' }}")); }) == "");                   // not UTF-8
  try {
    render("{% if %}");
  } catch (const jinja::SyntaxError& e) {
    CHECK(std::string(e.what()) == "test.jinja: line 1, column 7: expression: unexpected '%}'");
  }
}

TEST_CASE("constructs this renderer does not implement are UnsupportedConstruct") {
  using E = jinja::UnsupportedConstruct;
  CHECK(error_at<E>([] { render("{% include 'x.jinja' %}"); }) == "line 1, column 4");
  CHECK(error_at<E>([] { render("{% extends 'x' %}"); }) == "line 1, column 4");
  CHECK(error_at<E>([] { render("{{ x | truncate(3) }}"); }) == "line 1, column 8");     // a Jinja filter not implemented
  CHECK(error_at<E>([] { render("{{ x | nosuchfilter }}"); }) == "line 1, column 8");
  CHECK(error_at<E>([] { render("{{ x is nosuchtest }}"); }) == "line 1, column 6");
  CHECK(error_at<E>([] { render("{% for x in y recursive %}{% endfor %}"); }) == "line 1, column 15");
  CHECK(error_at<E>([] { render("{{ '%s' % 1 }}"); }) == "line 1, column 9");
  CHECK(error_at<E>([] { render("{{ 'a{}'.format(1) }}"); }) == "line 1, column 9");
  CHECK(error_at<E>([] { render("{{ 9223372036854775807 + 1 }}"); }) == "line 1, column 24");
  CHECK(error_at<E>([] { render("{{ f(*x) }}"); }) == "line 1, column 6");
  CHECK(error_at<E>([] { render("{{ m.99999999999999999999 }}"); }) == "line 1, column 6");  // found by fuzzing
  CHECK(error_at<E>([] { render("{{ cycler(1) }}"); }) == "line 1, column 10");
}

TEST_CASE("runtime errors: undefined attributes, types, calls") {
  using E = jinja::RenderError;
  const ordered_json ctx = ordered_json::parse(R"({"m": {"role": "user"}, "l": [1]})");
  CHECK(error_at<E>([&] { render("{{ m.content + 'x' }}", ctx); }) == "line 1, column 14");
  CHECK(error_at<E>([&] { render("\n{{ nothere.attr }}", ctx); }) == "line 2, column 11");
  CHECK(error_at<E>([&] { render("{{ nothere() }}", ctx); }) == "line 1, column 11");
  CHECK(error_at<E>([&] { render("{{ 1 + 'a' }}", ctx); }) == "line 1, column 6");
  CHECK(error_at<E>([&] { render("{{ 1 / 0 }}", ctx); }) == "line 1, column 6");
  CHECK(error_at<E>([&] { render("{{ 1 < 'a' }}", ctx); }) == "line 1, column 6");
  CHECK(error_at<E>([&] { render("{{ 'a'() }}", ctx); }) == "line 1, column 7");
  CHECK(error_at<E>([&] { render("{{ l.append(2) }}", ctx); }) == "line 1, column 5");
  CHECK(error_at<E>([&] { render("{% set m.x = 1 %}", ctx); }) == "line 1, column 4");
  CHECK(error_at<E>([&] { render("{% set ns = namespace() %}{% set ns._x = 1 %}", ctx); }) == "line 1, column 30");
  CHECK(error_at<E>([&] { render("{{ undefined_var | tojson }}", ctx); }) == "line 1, column 20");
  CHECK(error_at<E>([&] { render("{% break %}", ctx); }) == "line 1, column 4");
  CHECK(error_at<E>([&] { render("{% set a, b = [1] %}", ctx); }) == "line 1, column 4");
  try {
    render("{{ m['content'] + 'x' }}", ctx);
  } catch (const E& e) {
    CHECK(std::string(e.what()).find("'dict object' has no attribute 'content'") != std::string::npos);
  }
}

TEST_CASE("raise_exception is a RaisedError carrying the template's message") {
  try {
    render("ok\n  {{ raise_exception('Roles must alternate') }}");
    FAIL("no error");
  } catch (const jinja::RaisedError& e) {
    CHECK(e.message() == "Roles must alternate");
    CHECK(e.field() == "line 2, column 21");
    CHECK(e.file() == "test.jinja");
  }
  CHECK_THROWS_AS(render("{{ raise_exception('x') }}"), fathom::UsageError);  // the conversation is rejected
}

TEST_CASE("limits stop hostile templates with a LimitError") {
  using E = jinja::LimitError;
  jinja::Limits lim;
  lim.max_loop_steps = 1000;
  lim.max_output = 1 << 16;
  lim.max_call_depth = 20;
  CHECK(error_at<E>([&] { render("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", {}, lim); }) ==
        "line 1, column 29");
  CHECK(error_at<E>([&] { render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", {}, lim); }) == "line 1, column 4");
  CHECK(error_at<E>([&] { render("{% for i in range(1000) %}{{ 'x' * 100 }}{% endfor %}", {}, lim); }) == "line 1, column 27");
  CHECK(error_at<E>([&] { render("{{ 'x' * 100000000 }}", {}, lim); }) == "line 1, column 8");
  CHECK(error_at<E>([&] { render("{{ range(1000000) }}", {}, lim); }) == "line 1, column 9");
  CHECK(error_at<E>([&] { render("{{ " + std::string(300, '(') + "1" + std::string(300, ')') + " }}"); }) == "line 1, column 104");
  CHECK(error_at<E>([&] { render("{% set ns = namespace(s='x') %}{% for i in range(30) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", {}, lim); }) ==
        "line 1, column 75");
}

TEST_CASE("strftime_now formats the local time; values convert from JSON in order") {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%d %b %Y", &tm);
  CHECK(render("{{ strftime_now('%d %b %Y') }}") == buf);
  const ordered_json ctx = ordered_json::parse(R"({"d": {"z": 1, "a": [1.5, null, true, "s"]}})");
  CHECK(render("{{ d|tojson }}", ctx) == R"({"z": 1, "a": [1.5, null, true, "s"]})");
  CHECK(render("{{ d }}", ctx) == "{'z': 1, 'a': [1.5, None, True, 's']}");
  // A template renders the same from several threads (no shared mutable state).
  const auto tpl = jinja::Template::parse("{% for i in range(3) %}{{ i }}{% endfor %}", "t");
  CHECK(tpl.render_json(ordered_json::object()) == "012");
  CHECK(tpl.render_json(ordered_json::object()) == "012");
}
