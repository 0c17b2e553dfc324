//! The plain-text table of `lmhost bench`.

pub(super) fn print_bench(r: &crate::tools::bench::BenchReport) {
    println!("model {} ({}), {} threads, {} runs", r.model, r.file, r.threads, r.runs);
    println!(
        "prompt {} tokens, generation {} tokens (greedy)",
        r.prompt_tokens, r.completion_tokens
    );
    println!("{:28} {:>12} {:>12}", "", "prompt t/s", "gen t/s");
    println!(
        "{:28} {:>12.1} {:>12.1}",
        "bare llama-cpp-2 loop", r.bare.prompt_tps, r.bare.generation_tps
    );
    println!(
        "{:28} {:>12.1} {:>12.1}",
        "lmhost (adapter + engine)", r.lmhost.prompt_tps, r.lmhost.generation_tps
    );
    println!(
        "{:28} {:>12.3} {:>12.3}",
        "lmhost / bare", r.prompt_ratio, r.generation_ratio
    );
    println!(
        "{:28} {:>12.1} {:>12.1}",
        "lmhost, JSON schema (grammar)", r.grammar.prompt_tps, r.grammar.generation_tps
    );
    println!(
        "{:28} {:>12} {:>12.3}",
        "grammar / lmhost", "", r.grammar_generation_ratio
    );
    if let (Some(c), Some(gen), Some(prompt)) = (r.candle, r.candle_generation_ratio, r.candle_prompt_ratio) {
        println!(
            "{:28} {:>12.1} {:>12.1}",
            "candle engine (lmhost)", c.prompt_tps, c.generation_tps
        );
        println!("{:28} {:>12.3} {:>12.3}", "candle / llama.cpp", prompt, gen);
    }
    if let (Some(c), Some(gen)) = (r.candle_own_kernels, r.candle_own_kernels_generation_ratio) {
        println!(
            "{:28} {:>12.1} {:>12.1}",
            "  on candle's kernels", c.prompt_tps, c.generation_tps
        );
        println!(
            "{:28} {:>12.3} {:>12.3}",
            "  that / llama.cpp",
            c.prompt_tps / r.lmhost.prompt_tps,
            gen
        );
    }
    println!(
        "{} requests: sequential {:.1} t/s, concurrent {:.1} t/s, ratio {:.2}",
        r.concurrency, r.sequential_tps, r.concurrent_tps, r.concurrency_ratio
    );
}
