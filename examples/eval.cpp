// eval: benchmark accuracy (MMLU, BoolQ, GPQA Diamond) or perplexity of a model under one or more
// depth policies, with layer-usage accounting and resumable JSON Lines results.
//
//   eval --model ../shared/models/stories260K/stories260K.bin --task mmlu
//        --policies full,lac:0.8 --out out/mmlu-stories.jsonl
//   eval --model ~/Qwen2.5-7B-Instruct --task mmlu --preset void --scoring generate
//        --policies full,lac:0.8 --threads 1 --out out/qwen-mmlu.jsonl
//   eval --model ../shared/models/stories260K/stories260K.bin --task perplexity
//        --data ../shared/data/wikitext2/wikitext-2-raw-test.txt --stride 256
//
// Rerunning with the same --out resumes. Under mpirun/srun (built with -DFATHOM_MPI=ON) the items
// are split over the ranks and rank 0 writes the results (examples/eval_distributed.hpp). See
// docs/evaluation.md.

#include "common.hpp"
#include "eval_distributed.hpp"

#include "fathom/eval/batched_generate.hpp"
#include "fathom/eval/boolq.hpp"
#include "fathom/eval/gpqa.hpp"
#include "fathom/eval/mmlu.hpp"
#include "fathom/eval/perplexity_parallel.hpp"
#include "fathom/eval/report.hpp"
#include "fathom/eval/runner.hpp"
#include "fathom/eval/subset.hpp"

using namespace fathom;
using namespace fathom::eval;

namespace {

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t a = 0;
  while (a <= s.size()) {
    size_t b = s.find(',', a);
    if (b == std::string::npos) b = s.size();
    if (b > a) out.push_back(s.substr(a, b - a));
    a = b + 1;
  }
  return out;
}

struct Args {
  examples::ModelArgs margs;
  std::string task = "mmlu", data, split = "test", preset = "lm-eval";
  std::string scoring = "loglik", policies = "full", out, subjects, gpqa_order = "shuffled", svg;
  int shots = 0, threads = 2, max_new = 51, print_prompts = 0;
  size_t limit = 0, window = 0, stride = 0, subset = 0, batch = 1;
  uint64_t seed = 0, subset_seed = 0;
  float temperature = 0.6f, top_p = 0.9f;
  bool greedy = false, no_chat = false, no_progress = false, per_subject = false, separate = false;
};

int run_perplexity(const examples::Comm& comm, const Args& a, const Model& model,
                   const tok::AnyTokenizer& tok, const std::vector<PolicySpec>& specs) {
  const std::string path = a.data.empty()
                               ? shared_file("data/wikitext2/wikitext-2-raw-test.txt").string()
                               : a.data;
  const std::string text = read_text_file(path);
  const auto ids = tok.encode(text, true);
  const size_t ctx = size_t(std::min<int64_t>(model.config().max_position_embeddings, 4096));
  const size_t window = a.window ? a.window : ctx;
  const size_t stride = a.stride ? a.stride : window / 2;
  if (comm.rank() == 0)
    std::fprintf(stderr, "%s: %zu tokens, window %zu, stride %zu, %zu windows\n", path.c_str(),
                 ids.size(), window, stride, perplexity_windows(ids.size(), window, stride));
  report::TextTable t({"policy", "ppl", "nll/token", "scored", "PP layers %", "tokens", "tok/s", "wall s"});
  const int workers = std::max(1, a.threads);
  for (const auto& spec : specs) {
    ProgressBar bar(perplexity_windows(ids.size(), window, stride), 0, !a.no_progress && comm.rank() == 0);
    const auto pr = examples::perplexity_distributed(comm, model, ids, window, stride, spec, workers,
                                                     [&] { bar.tick(spec.name); });
    bar.finish();
    const PerplexityResult& r = pr.result;
    const double layers = pr.usage.mean_activated();
    t.add_row({spec.name, report::fixed(r.ppl(), 3), report::fixed(r.mean_nll(), 4),
               std::to_string(r.scored), pct(layers, 1), std::to_string(r.tokens),
               report::fixed(r.tokens_per_second(), 0), report::fixed(r.seconds, 1)});
  }
  if (comm.rank() == 0) std::cout << t.str();
  return 0;
}

// The prompts exactly as the run would feed them (same budget, truncation and encoding), so they
// can be diffed against another implementation's.
void print_prompts(const Task& task, const tok::AnyTokenizer& tok, const EvalOptions& o,
                   const Model& model, size_t n) {
  const int64_t ctx = Session(model).capacity();
  const bool loglik = o.scoring.scoring == Scoring::Loglik;
  const size_t reserve = prompt_reserve(o.scoring, ctx);
  PromptBuilder builder(tok, task.kind, o.prompt);
  for (size_t i = 0; i < std::min(n, task.items.size()); ++i) {
    const Item& it = task.items[i];
    const Prompt p = builder.build(it, task.dev, size_t(ctx) - reserve, loglik);
    std::printf("=== %s: %zu tokens, %d-shot%s\n", it.id.c_str(), p.tokens.size(), p.shots,
                p.truncated ? ", truncated" : "");
    std::printf("--- text (%zu bytes)\n%s\n--- ids\n", p.text.size(), p.text.c_str());
    for (size_t k = 0; k < p.tokens.size(); ++k) std::printf("%s%d", k ? " " : "", p.tokens[k]);
    std::printf("\n");
    if (p.cut_tokens) std::printf("(left-truncated: the first %zu tokens after BOS dropped)\n", p.cut_tokens);
  }
}

}  // namespace

int main(int argc, char** argv) {
  examples::Comm comm(argc, argv);  // one rank unless started by mpirun/srun in an MPI build
  CLI::App app{"fathom eval: MMLU / BoolQ / GPQA accuracy or perplexity under depth policies"};
  Args a;
  a.margs.add(app, false);
  app.add_option("--task", a.task, "mmlu | boolq | gpqa | perplexity")
      ->check(CLI::IsMember({"mmlu", "boolq", "gpqa", "perplexity"}));
  app.add_option("--data", a.data, "dataset folder/file (default: the shared copy)");
  app.add_option("--split", a.split, "MMLU split folder (test, dev)");
  app.add_option("--shots", a.shots, "k-shot examples (MMLU dev set)")->check(CLI::Range(0, 5));
  app.add_option("--preset", a.preset, "prompt wording: lm-eval | void")
      ->check(CLI::IsMember({"lm-eval", "void"}));
  app.add_option("--scoring", a.scoring, "loglik | generate")->check(CLI::IsMember({"loglik", "generate"}));
  app.add_option("--policies", a.policies,
                 "comma list of registered policies: full, lac:α, lac-instream:α, lac-trace:α, "
                 "lac-exit:α, static:pp=1,4;rg=2 (layers never computed, per phase), "
                 "early-exit:[MEASURE:]λ, logit-lens:i, cos-skip:c");
  app.add_option("--out", a.out, "results JSON Lines (resumed when it exists)");
  app.add_option("--batch", a.batch,
                 "--scoring generate: sequences decoded together, B at a time (results identical for "
                 "every B; --threads are then the kernels' threads; eval/batched_generate.hpp)")
      ->check(CLI::PositiveNumber);
  app.add_option("--limit", a.limit, "only the first N items");
  app.add_option("--subset", a.subset,
                 "a fixed stratified sample of N items (each subject in proportion to its size, "
                 "seeded by --subset-seed, kept in the task's order; --limit applies after it)");
  app.add_option("--subset-seed", a.subset_seed, "seed of the --subset sample");
  app.add_option("--subjects", a.subjects, "comma list of MMLU subjects");
  app.add_option("--seed", a.seed, "sampling / GPQA shuffle seed");
  app.add_option("--threads", a.threads, "worker threads over items (1: one item at a time, "
                                         "OpenMP inside the model — better for large models)");
  app.add_option("--temperature", a.temperature, "generation temperature");
  app.add_option("--top-p", a.top_p, "generation nucleus");
  app.add_option("--max-new-tokens", a.max_new,
                 "new tokens at most, the one sampled from the prompt pass included (51: the "
                 "Void paper's first token + 50 loop steps)");
  app.add_flag("--greedy", a.greedy, "greedy generation instead of sampling");
  app.add_flag("--no-chat", a.no_chat, "plain text even when the tokenizer has a chat template");
  app.add_option("--gpqa-order", a.gpqa_order, "shuffled | correct-last (the Void paper's code)")
      ->check(CLI::IsMember({"shuffled", "correct-last"}));
  app.add_option("--svg", a.svg, "accuracy / layer usage vs α plot (default: <out>.svg with LAC policies)");
  app.add_option("--window", a.window, "perplexity window (default: the model's context)");
  app.add_option("--stride", a.stride, "perplexity stride (default: window / 2)");
  app.add_option("--print-prompts", a.print_prompts,
                 "print the first N fully rendered prompts (text and token ids) and exit "
                 "without running the model");
  app.add_flag("--separate-passes", a.separate,
               "one forward pass per policy (default: full, lac:α and lac-trace:α share one pass "
               "per item; the results are identical)");
  app.add_flag("--no-progress", a.no_progress, "no progress bar");
  app.add_flag("--per-subject", a.per_subject, "print accuracy per subject");
  CLI11_PARSE(app, argc, argv);

  return examples::guarded(comm, [&] {
    const auto specs = parse_policies(a.policies);
    auto model = a.margs.load();
    auto tok = a.margs.load_tokenizer();
    if (tok.vocab_size() > model->vocab())
      throw UsageError(a.margs.tokenizer, "vocab", "tokenizer has " + std::to_string(tok.vocab_size()) +
                                                 " tokens, the model " + std::to_string(model->vocab()));
    if (a.task == "perplexity") return run_perplexity(comm, a, *model, tok, specs);

    Task task;
    std::string data = a.data;
    const uint64_t seed = a.seed;
    const GpqaOrder order = a.gpqa_order == "correct-last" ? GpqaOrder::CorrectLast : GpqaOrder::Shuffled;
    if (a.task == "mmlu") {
      if (data.empty()) data = shared_file("data/mmlu").string();
      task = read_mmlu(data, split_list(a.subjects), a.split);
    } else if (a.task == "boolq") {
      if (data.empty()) data = shared_file("data/boolq/dev.jsonl").string();
      task = read_boolq(data);
    } else {
      if (data.empty()) data = shared_file("data/gpqa/gpqa_diamond.zip").string();
      // The released Void code uses GPQA's answer strings untrimmed; so does the void preset.
      task = read_gpqa(data, order, seed, {}, a.preset == "void" ? GpqaText::AsIs : GpqaText::Trimmed);
    }
    if (!a.subjects.empty() && a.task != "mmlu") {
      const auto keep = split_list(a.subjects);
      std::erase_if(task.items, [&](const Item& it) {
        return std::find(keep.begin(), keep.end(), it.subject) == keep.end();
      });
    }

    if (a.subset) task.items = stratified_subset(task.items, a.subset, a.subset_seed);

    EvalOptions o;
    o.prompt = {parse_preset(a.preset), a.shots, !a.no_chat};
    o.scoring.scoring = parse_scoring(a.scoring);
    o.scoring.generation = {a.max_new, a.greedy ? 0.f : a.temperature, a.top_p};
    o.seed = seed;
    o.limit = a.limit;
    o.threads = a.threads;
    o.session.kv_precision = a.margs.kv_precision();
    o.progress = !a.no_progress;
    o.share_pass = !a.separate;
    o.out = a.out.empty() ? "out/eval-" + a.task + ".jsonl" : a.out;
    if (auto dir = std::filesystem::path(o.out).parent_path(); !dir.empty())
      std::filesystem::create_directories(dir);
    std::vector<std::string> names;
    for (auto& s : specs) names.push_back(s.name);
    nlohmann::json extra = {{"split", a.split}};
    if (a.margs.weights != "as-stored") extra["weights"] = a.margs.weights;  // absent: as stored (older files)
    if (a.task == "gpqa") {
      extra["gpqa_order"] = a.gpqa_order;
      extra["gpqa_text"] = a.preset == "void" ? "as-is" : "trimmed";
    }
    if (a.subset) extra["subset"] = {{"n", a.subset}, {"seed", a.subset_seed}};
    const auto settings = run_settings(task.kind, std::filesystem::weakly_canonical(a.margs.model).string(),
                                       std::filesystem::weakly_canonical(data).string(), names, o, extra);
    const bool chat = o.prompt.chat && tok.has_chat_template();
    if (comm.rank() == 0)
      std::fprintf(stderr, "%s: %zu items, %s preset, %d-shot, %s, %s scoring, context %lld, %zu policies -> %s\n",
                 task_name(task.kind), o.limit ? std::min(o.limit, task.items.size()) : task.items.size(),
                 preset_name(o.prompt.preset), a.shots,
                 chat ? ("chat template: " + tok.chat_template_source()).c_str() : "plain text",
                 scoring_name(o.scoring.scoring),
                 (long long)std::min<int64_t>(model->config().max_position_embeddings, 4096),
                 specs.size(), o.out.c_str());

    if (a.print_prompts > 0) {
      if (comm.rank() == 0) print_prompts(task, tok, o, *model, size_t(a.print_prompts));
      return 0;
    }
    const examples::RunPart run_part = [&](const Task& part, const EvalOptions& po, const nlohmann::json& ps) {
      // --batch B: generation scoring with B sequences decoding together (same results).
      if (a.batch > 1) return run_eval_batched(part, tok, *model, specs, po, ps, a.batch);
      return run_eval(part, tok, *model, specs, po, ps);
    };
    auto run = examples::run_eval_distributed(comm, task, tok, *model, names, o, settings, run_part);
    if (comm.rank() != 0) return 0;
    if (a.per_subject) std::cout << subject_table(run.summaries).str() << "\n";
    std::cout << summary_table(run.summaries, model->n_layers()).str();
    std::printf("%zu items%s; this call: %zu results computed, %zu resumed, wall %.1f s\n", run.items,
                run.complete ? "" : " (INCOMPLETE)", run.computed, run.resumed, run.wall_seconds);
    const std::string svg = a.svg.empty() ? o.out + ".svg" : a.svg;
    if (write_alpha_svg(svg, specs, run.summaries, model->n_layers(),
                        std::string(task_name(task.kind)) + ": accuracy and layers used vs α"))
      std::printf("plot: %s\n", svg.c_str());
    return 0;
  });
}
