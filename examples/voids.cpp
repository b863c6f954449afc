// voids — the LAC void analysis ("Void in Language Models"): run prompt processing (PP) and
// response generation (RG) under L2 Adaptive Computation (or any registered policy, --policy),
// print which layers each phase used,
// and write the per-token trace (JSONL, CSV), the usage summary, a tokens × layers heatmap and
// the layer usage by position over all prompts (usage-buckets.svg).
//
// Two sources of prompts:
//   --prompt / --prompts   free text (stories260K's default "Once upon a time"), greedy by default;
//   --task mmlu|boolq      benchmark questions through eval's prompt path (--preset void: the
//                          released prompt bytes, the model's chat template with the generation
//                          prompt), the paper's sampling (temperature 0.6, top-p 0.9, 51 new tokens,
//                          stop at eos; per-item seeds as eval's), and eval's answer extraction:
//                          each question is printed with the reply, the extracted label and
//                          whether it is right. --items N picks N questions spread over subjects.
// --batch B decodes up to B prompts or questions together (model/batch_session.hpp): traces,
// usage, similarities, replies and every output file identical for every B.
// Skip sets and speed (docs/policies.md, "Calibrated skipping"):
//   --calibrate c1,c2,...  per threshold c, the static skip set of layers activated for fewer
//                          than c of the tokens (per phase), and ShortGPT's set of the same sizes
//                          (the layers whose input and output are most similar by cosine over the
//                          same tokens); printed and written to calibration.csv as eval policies
//                          ("static:pp=...;rg=..."), then timed unless --no-timing;
//   --shortgpt k1,k2,...   ShortGPT's k layers alone (same set in PP and RG), into the same file;
//   --time-policy P        decode tokens/s of policy P (repeatable; eval's policy names), with
//                          full depth as the reference, into timing.csv;
//   --frontier DIR         no model run: join DIR/calibration.csv, DIR/timing.csv and eval results
//                          DIR/mmlu.jsonl, DIR/boolq.jsonl into DIR/frontier.csv and .svg.
//
//   voids                                                   # stories260K, "Once upon a time"
//   voids -m smollm2.gguf --weights q8 --task mmlu --items 5 --preset void
//   voids -m smollm2.gguf --weights q8 --task mmlu --split dev --items 57 --calibrate 0.1,0.3
#include "common.hpp"

#include <fstream>

#include "fathom/depth/layer_similarity.hpp"
#include "fathom/depth/policies.hpp"
#include "fathom/eval/boolq.hpp"
#include "fathom/eval/decode_timing.hpp"
#include "fathom/eval/frontier.hpp"
#include "fathom/eval/mmlu.hpp"
#include "fathom/eval/policies.hpp"
#include "fathom/eval/runner.hpp"
#include "fathom/eval/subset.hpp"
#include "fathom/model/batch_generate.hpp"
#include "fathom/model/generate.hpp"
#include "fathom/report/heatmap.hpp"
#include "fathom/report/trace_io.hpp"
#include "fathom/report/usage_buckets.hpp"
#include "fathom/report/usage_table.hpp"

namespace {

std::string one_line(std::string s, size_t max_chars) {
  for (char& c : s)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  if (s.size() > max_chars) s = s.substr(0, max_chars) + "…";
  return s;
}

// LayerSimilarity's measurement for one sequence of a batch (--batch): the sequence's cosines are
// kept in the order they were measured and added to the shared sums when the sequence is done, in
// prompt order, so that the sums are those of the unbatched run bit for bit.
struct CosineEntry {
  uint8_t phase;
  uint32_t layer;
  double cos;
};
template <fathom::DepthPolicy P>
class CosineLog {
 public:
  using State = typename P::State;
  static constexpr bool needs_layer_input = true;
  static constexpr bool observes_layers = true;
  CosineLog(P inner, std::vector<CosineEntry>& log) : p_(std::move(inner)), log_(&log) {}
  void begin_token(const fathom::TokenInfo& t, State& s) { p_.begin_token(t, s); }
  fathom::Action before_layer(const fathom::TokenInfo& t, State& s, int l) { return p_.before_layer(t, s, l); }
  void after_layer(const fathom::TokenInfo& t, State& s, int l, std::span<const float> in, std::span<float> out,
                   fathom::LayerNote& note) {
    log_->push_back({uint8_t(t.phase), uint32_t(l), fathom::cosine(in, out)});
    if constexpr (P::observes_layers) p_.after_layer(t, s, l, in, out, note);
  }
  int readout_layer(const fathom::TokenInfo& t, const State& s, int last_run) { return p_.readout_layer(t, s, last_run); }
  std::span<const float> readout(const fathom::TokenInfo& t, State& s, std::span<const float> f) {
    return p_.readout(t, s, f);
  }
  void end_token(const fathom::TokenInfo& t, State& s) { p_.end_token(t, s); }

 private:
  P p_;
  std::vector<CosineEntry>* log_;
};
void replay(const std::vector<CosineEntry>& log, fathom::LayerCosines& c) {
  for (const auto& e : log)
    if (e.layer < c.n_layers()) c.sum[e.phase][e.layer] += e.cos, ++c.count[e.phase][e.layer];
}

// --batch B: requests 0..n-1 (prompts or questions) decoded up to B at a time
// (model/batch_generate.hpp), each with its own trace, policy object and cosine log. Once a request
// and all before it are done, its records are merged into `trace`, its cosines replayed into
// `cosines` and show(i, generation) is called, all in request order: trace, sums and printout are
// those of decoding the requests one after another.
template <class Inner, class RequestFn, class ShowFn>
void decode_batched(fathom::BatchSession& bs, size_t n, const Inner& inner, RequestFn&& request,
                    fathom::Trace& trace, fathom::LayerCosines& cosines, ShowFn&& show) {
  using namespace fathom;
  std::vector<std::unique_ptr<Trace>> traces(n);
  std::vector<std::vector<CosineEntry>> logs(n);
  std::vector<std::optional<Generation>> done(n);
  size_t shown = 0;
  generate_batch(
      bs, n, request, [&](size_t i) { return CosineLog<Inner>(inner, logs[i]); },
      [&](size_t i, Session& s) {
        traces[i] = std::make_unique<Trace>(bs.model().n_layers());
        traces[i]->set_sequence(int64_t(i));
        s.set_trace(traces[i].get());
      },
      [&](size_t i, Generation&& g, Session& s) {
        s.set_trace(nullptr);
        done[i] = std::move(g);
        for (; shown < n && done[shown]; ++shown) {
          trace.merge(*traces[shown]);
          replay(logs[shown], cosines);
          traces[shown].reset();
          logs[shown] = {};
          show(shown, *done[shown]);
        }
      });
}

// Joins calibration, timing and eval results in `dir` into frontier.csv / frontier.svg.
int frontier(const std::string& dir_name) {
  namespace fs = std::filesystem;
  const fs::path dir(dir_name);
  const auto rows = fathom::eval::read_calibration_csv((dir / "calibration.csv").string());
  const auto tps = fathom::eval::read_timing_csv((dir / "timing.csv").string());
  std::vector<fathom::eval::FrontierTask> tasks;
  for (const char* t : {"mmlu", "boolq"})
    if (fs::exists(dir / (std::string(t) + ".jsonl")))
      tasks.push_back({t, fathom::eval::read_results_records((dir / (std::string(t) + ".jsonl")).string())});
  const std::string csv = fathom::eval::frontier_csv(rows, tasks, tps);
  fathom::report::write_text_file(dir / "frontier.csv", csv);
  fathom::eval::write_frontier_svg(dir / "frontier.svg", fathom::eval::frontier_series(rows, tasks, tps),
                                   "Skipping layers: accuracy vs decode speed");
  std::cout << csv << "wrote " << (dir / "frontier.csv").string() << ", frontier.svg\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fathom voids: which layers does each token use? (LAC, Void in Language Models)"};
  examples::ModelArgs margs;
  margs.add(app);
  std::string prompt = "Once upon a time", prompts_file, out_dir = "voids-out", mode = "final-state",
              kv = "propagate", task_name, data, split = "test", preset = "void", frontier_dir,
              policy_name;
  double alpha = 0.8;
  std::vector<double> calibrate;
  std::vector<size_t> shortgpt;
  std::vector<std::string> time_policies;
  bool chat = false, no_chat = false, no_timing = false;
  size_t heatmap_tokens = 96, n_items = 5, buckets = 10, time_prompts = 3, time_repeats = 3, batch = 1;
  fathom::GenerateOptions gen;
  gen.max_new_tokens = 48;
  app.add_option("-p,--prompt", prompt, "prompt text");
  app.add_option("--prompts", prompts_file, "file with one prompt per line (instead of --prompt)");
  app.add_flag("--chat", chat, "wrap each prompt in the model's chat format (generation prompt)");
  app.add_option("--batch", batch,
                 "prompts (--prompt(s)) or questions (--task) decoded together (results identical for every value)")
      ->check(CLI::PositiveNumber);
  app.add_option("--task", task_name, "benchmark questions instead of prompts: mmlu, boolq")
      ->check(CLI::IsMember({"mmlu", "boolq"}));
  app.add_option("--items", n_items, "--task: questions, spread over the subjects (MMLU)");
  app.add_option("--split", split, "--task mmlu: split folder (test, dev)");
  app.add_option("--data", data, "--task: dataset folder/file (default: the shared copy)");
  app.add_option("--preset", preset, "--task: prompt wording, void (default) or lm-eval")
      ->check(CLI::IsMember({"void", "lm-eval"}));
  app.add_flag("--no-chat", no_chat, "--task: plain text even when the model has a chat template");
  app.add_option("-a,--alpha", alpha, "LAC α: a layer is a void when Δ_l < α·range(Δ_{<l})");
  app.add_option("--mode", mode, "what a void means: final-state (the authors' code), in-stream, trace-only")
      ->check(CLI::IsMember({"final-state", "in-stream", "trace-only"}));
  app.add_option("--policy", policy_name,
                 "any registered policy instead of LAC --mode/--alpha (lac:α = final-state, "
                 "lac-instream:α, lac-trace:α, static:..., early-exit:..., cos-skip:c, ...)");
  app.add_option("--kv", kv, "K/V of positions that skipped a layer: propagate, exact, none")
      ->check(CLI::IsMember({"propagate", "exact", "none"}));
  app.add_option("-n,--max-new-tokens", gen.max_new_tokens,
                 "tokens to generate per prompt (default 48; --task: 51, the paper's)");
  app.add_option("--temperature", gen.sampling.temperature, "0: greedy (default; --task: 0.6)");
  app.add_option("--top-p", gen.sampling.top_p, "nucleus sampling mass (--task: 0.9)");
  app.add_option("--seed", gen.sampling.seed, "sampling seed (--task: mixed with each item's id, as eval)");
  app.add_option("-o,--out", out_dir, "folder for trace.jsonl, trace.csv, usage.csv, heatmap.svg, ...");
  app.add_option("--heatmap-tokens", heatmap_tokens, "tokens per phase drawn in the heatmap");
  app.add_option("--buckets", buckets, "position buckets of usage-buckets.svg");
  app.add_option("--calibrate", calibrate,
                 "thresholds c (comma list): skip layers activated for fewer than c of the tokens "
                 "(per phase), plus ShortGPT's set of the same size; eval policies into calibration.csv")
      ->delimiter(',');
  app.add_option("--shortgpt", shortgpt,
                 "ShortGPT sets of these sizes k (comma list; the same k layers in both phases), "
                 "printed and added to calibration.csv")
      ->delimiter(',');
  app.add_option("--time-policy", time_policies,
                 "time decoding under this eval policy (repeatable), against full depth")
      ->take_all();
  app.add_flag("--no-timing", no_timing, "--calibrate: do not time the derived policies");
  app.add_option("--time-prompts", time_prompts, "prompts decoded per timed policy (the first N)");
  app.add_option("--time-repeats", time_repeats,
                 "timing rounds over all policies in turn; each policy keeps its fastest round");
  app.add_option("--frontier", frontier_dir,
                 "join DIR/calibration.csv, timing.csv, mmlu.jsonl, boolq.jsonl into frontier.csv/.svg");
  CLI11_PARSE(app, argc, argv);

  return examples::guarded([&] {
    using namespace fathom;
    if (!frontier_dir.empty()) return frontier(frontier_dir);
    for (double c : calibrate)
      if (!(c >= 0 && c <= 1)) throw UsageError("", "--calibrate", "a threshold must be in [0, 1]");
    const bool task_mode = !task_name.empty();
    if (task_mode) {  // the paper's sampling unless asked otherwise
      if (!app.count("--max-new-tokens")) gen.max_new_tokens = 51;
      if (!app.count("--temperature")) gen.sampling.temperature = 0.6f;
      if (!app.count("--top-p")) gen.sampling.top_p = 0.9f;
    }
    const double cpu0 = eval::process_cpu_seconds();
    const auto t_start = std::chrono::steady_clock::now();
    auto model = margs.load();
    auto tok = margs.load_tokenizer();
    // --mode/--alpha name a LAC policy of the registry; --policy names any.
    const PolicySpec spec = parse_policy(
        !policy_name.empty() ? policy_name
        : (mode == "in-stream" ? "lac-instream:" : mode == "trace-only" ? "lac-trace:" : "lac:") +
              std::to_string(alpha));
    const KvStrategy kv_strategy = kv == "exact" ? KvStrategy::Exact
                                   : kv == "none" ? KvStrategy::None
                                                  : KvStrategy::Propagate;
    const SessionOptions so{0, kv_strategy, margs.kv_precision()};
    std::filesystem::create_directories(out_dir);
    const std::filesystem::path out(out_dir);
    auto token_text = [&](int32_t id) { return tok.decode({id}, false); };

    Trace trace(model->n_layers());
    // ShortGPT's similarity is measured in the same pass (final-state LAC leaves the stream alone).
    LayerCosines cosines(model->n_layers());
    report::TraceJsonlWriter jsonl(out / "trace.jsonl", token_text);
    std::vector<std::vector<int32_t>> encoded;
    std::ofstream texts(out / "generations.txt", std::ios::binary);
    std::cout << "model " << margs.model << " (" << model->n_layers() << " layers, weights "
              << margs.weights << "), policy " << spec.name << ", kv " << kv << "\n";
    const auto t0 = std::chrono::steady_clock::now();
    std::string what;  // for the figures' subtitles
    with_policy(*model, spec, [&](auto& inner) {
    LayerSimilarity policy(inner, cosines);
    if (task_mode) {
      eval::Task task;
      if (task_name == "mmlu") {
        task = eval::read_mmlu(data.empty() ? shared_file("data/mmlu").string() : data, {}, split);
      } else {
        task = eval::read_boolq(data.empty() ? shared_file("data/boolq/dev.jsonl").string() : data);
      }
      const auto items = eval::spread_items(task.items, n_items);
      eval::PromptBuilder builder(tok, task.kind, {eval::parse_preset(preset), 0, !no_chat});
      eval::ScoringSettings ss;
      ss.scoring = eval::Scoring::Generate;
      ss.generation = {gen.max_new_tokens, gen.sampling.temperature, gen.sampling.top_p};
      // One session (--batch 1) or B decoding together.
      std::optional<Session> one;
      std::optional<BatchSession> many;
      if (batch <= 1) one.emplace(*model, so);
      else many.emplace(*model, batch, so);
      const int64_t ctx = one ? one->capacity() : many->session(0).capacity();
      const size_t budget = size_t(ctx) - eval::prompt_reserve(ss, ctx);
      std::cout << eval::task_name(task.kind) << " " << split << ", " << items.size() << " items, " << preset
                << " preset, "
                << (builder.uses_chat() ? "chat template: " + tok.chat_template_source() : "plain text")
                << ", temperature " << gen.sampling.temperature << ", top-p " << gen.sampling.top_p
                << ", up to " << gen.max_new_tokens << " new tokens, seed " << gen.sampling.seed << "\n\n";
      std::vector<eval::Prompt> built;
      for (const auto& it : items) {
        built.push_back(builder.build(it, task.dev, budget, false));
        encoded.push_back(built.back().tokens);
      }
      auto seed = [&](size_t i) { return eval::item_seed(gen.sampling.seed, items[i].id); };
      size_t right = 0, none = 0;
      auto show = [&](size_t i, const eval::Scored& sc) {
        jsonl.sync(trace);
        const eval::Item& it = items[i];
        const eval::Prompt& p = built[i];
        const bool ok = sc.pred == it.answer;
        right += ok, none += sc.pred < 0;
        std::cout << "[" << i << "] " << it.id << " (" << p.tokens.size() << " prompt tokens"
                  << (p.truncated ? ", truncated" : "") << "): " << one_line(it.question, 100) << "\n"
                  << "    reply: " << one_line(sc.output, 160) << "\n"
                  << "    extracted: " << (sc.pred < 0 ? std::string("none") : p.labels[size_t(sc.pred)])
                  << ", answer " << p.labels[size_t(it.answer)] << " -> " << (ok ? "right" : "wrong") << "\n";
        texts << it.id << "\t" << sc.output << "\n" << std::flush;
      };
      if (one) {
        one->set_trace(&trace);
        for (size_t i = 0; i < items.size(); ++i) {
          trace.set_sequence(int64_t(i));
          show(i, eval::score_generate(*one, tok, built[i], items[i], ss.generation, seed(i), policy));
        }
      } else {
        decode_batched(
            *many, items.size(), inner,
            [&](size_t i) {
              return BatchRequest{built[i].tokens, eval::generation_options(tok, ss.generation, seed(i))};
            },
            trace, cosines,
            [&](size_t i, const Generation& g) { show(i, eval::score_reply(tok, built[i], items[i], g)); });
      }
      std::printf("\n%zu / %zu right, %zu without an extractable answer\n", right, items.size(), none);
      what = std::to_string(items.size()) + " " + eval::task_name(task.kind) + " " + split + " prompts";
    } else {
      if (chat) std::cout << "chat template: " << tok.chat_template_source() << "\n";
      std::cout << "\n";
      const auto prompts = prompts_file.empty() ? std::vector<std::string>{prompt} : examples::read_prompts(prompts_file);
      for (size_t i = 0; i < prompts.size(); ++i) {
        const std::string text = chat ? tok.apply_chat_template({{"user", prompts[i]}}, true) : prompts[i];
        auto ids = tok.encode(text, !chat);
        if (ids.empty()) throw UsageError("", "prompt", "prompt " + std::to_string(i) + " is empty");
        encoded.push_back(ids);
      }
      auto show = [&](size_t i, const Generation& g) {
        jsonl.sync(trace);  // every record on disk as soon as its prompt is done
        const std::string answer = tok.decode(g.tokens, true);
        std::cout << "[" << i << "] " << prompts[i] << " ▸ " << answer << "\n";
        texts << prompts[i] << "\t" << answer << "\n" << std::flush;
      };
      if (batch <= 1) {
        for (size_t i = 0; i < prompts.size(); ++i) {
          Session session(*model, so);
          session.set_trace(&trace);
          trace.set_sequence(int64_t(i));
          show(i, generate(session, encoded[i], gen, policy));
        }
      } else {
        BatchSession bs(*model, batch, so);
        decode_batched(bs, prompts.size(), inner, [&](size_t i) { return BatchRequest{encoded[i], gen}; }, trace,
                       cosines, show);
      }
      what = std::to_string(prompts.size()) + " prompts";
    }
    });
    const double secs = examples::seconds_since(t0);

    std::cout << "\n" << report::usage_text(trace) << "\n";
    const auto pp = trace.usage(Phase::PP), rg = trace.usage(Phase::RG);
    std::printf("%% of layers used: PP %.1f%%, RG %.1f%% (%zu + %zu tokens, %.2f s)\n",
                100 * pp.mean_activated(), 100 * rg.mean_activated(), pp.tokens, rg.tokens, secs);

    report::write_trace_csv(out / "trace.csv", trace, token_text);
    std::ofstream(out / "usage.csv", std::ios::binary) << report::usage_csv(trace);
    report::HeatmapOptions hopt;
    hopt.model = std::filesystem::path(margs.model).filename().string();
    hopt.note = spec.name + ", KV " + kv;
    hopt.max_tokens = heatmap_tokens;
    report::write_heatmap_svg(out / "heatmap.svg", trace, hopt, token_text);
    char note[160];
    std::snprintf(note, sizeof note, "%s, %s", spec.name.c_str(), what.c_str());
    report::write_usage_buckets_svg(out / "usage-buckets.svg",
                                    report::bucket_usage(trace.records(), model->n_layers(), buckets),
                                    {hopt.model, note});
    std::cout << "wrote " << (out / "trace.jsonl").string() << ", trace.csv, usage.csv, heatmap.svg, "
              << "usage-buckets.svg, generations.txt\n";

    // Skip sets derived from this run's tokens.
    std::vector<std::string> to_time = time_policies;
    if (!calibrate.empty() || !shortgpt.empty()) {
      const auto sets = eval::skip_sets(trace, cosines, calibrate, shortgpt);
      std::ofstream(out / "calibration.csv", std::ios::binary) << eval::calibration_csv(sets);
      std::cout << "\nskip sets from " << pp.tokens << " PP + " << rg.tokens << " RG tokens:\n";
      for (const auto& r : sets) {
        char c[24] = "-";  // ShortGPT sets of a given size have no threshold
        if (std::isfinite(r.c)) std::snprintf(c, sizeof c, "%g", r.c);
        std::printf("  c = %-5s %-10s PP skips %2zu, RG skips %2zu: %s\n", c, r.method.c_str(), r.skipped_pp,
                    r.skipped_rg, r.policy.c_str());
        if (!no_timing && std::find(to_time.begin(), to_time.end(), r.policy) == to_time.end())
          to_time.push_back(r.policy);
      }
      std::cout << "wrote " << (out / "calibration.csv").string() << "\n";
    }

    if (!to_time.empty()) {
      // Decode speed of full depth and every policy to time (eval/decode_timing.hpp).
      std::vector<PolicySpec> specs = {parse_policy("full")};
      for (const auto& p : to_time) {
        auto s = parse_policy(p);
        if (s.name != "full") specs.push_back(s);
      }
      std::ofstream tcsv(out / "timing.csv", std::ios::binary);
      tcsv << "policy,tokens,seconds,cpu_seconds,tok_s\n";
      const size_t np = std::min(time_prompts, encoded.size());
      double full_tps = 0;
      std::printf("\ndecode speed (%zu prompts x %d steps, %d threads, best of %zu rounds):\n", np,
                  gen.max_new_tokens, omp_get_max_threads(), time_repeats);
      const std::vector<std::vector<int32_t>> timed(encoded.begin(), encoded.begin() + std::ptrdiff_t(np));
      const auto best = eval::time_decode(*model, specs, timed, gen.max_new_tokens, time_repeats,
                                          {0, kv_strategy, margs.kv_precision()});
      for (size_t k = 0; k < specs.size(); ++k) {
        const auto& b = best[k];
        const double tps = b.tok_s();
        if (specs[k].name == "full") full_tps = tps;
        tcsv << report::csv_field(specs[k].name) << "," << b.tokens << "," << b.seconds << ","
             << b.cpu_seconds << "," << tps << "\n";
        std::printf("  %7.1f tok/s (%.2fx)  %s\n", tps, full_tps > 0 ? tps / full_tps : 0.0,
                    specs[k].name.c_str());
      }
      std::cout << "wrote " << (out / "timing.csv").string() << "\n";
    }
    std::printf("total (loading included): wall %.1f s, CPU %.1f s\n", examples::seconds_since(t_start),
                eval::process_cpu_seconds() - cpu0);
    return 0;
  });
}
