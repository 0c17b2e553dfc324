//! Measures how deep a left-deep expression chain may go before parsing,
//! compiling and dropping a template overflows a thread's stack. Run it in a
//! child process per probe (an overflow aborts the process):
//!
//! `stack_probe <family> <terms> <stack-KiB> [raw|check]`
//!
//! `raw` parses with the bare environment (no lmhost bound), `check` goes through
//! `lmhost_template::check`. Prints `ok` or `err: …` (and the size and time of
//! the call on stderr); an overflow is SIGABRT.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let family = args[1].clone();
    let terms: usize = args[2].parse().unwrap();
    let stack_kib: usize = args[3].parse().unwrap();
    let mode = args.get(4).cloned().unwrap_or_else(|| "raw".into());
    let source = lmhost_template::hostile::chain(&family, terms).expect("unknown family");
    let result = std::thread::Builder::new()
        .stack_size(stack_kib << 10)
        .spawn(move || {
            let started = std::time::Instant::now();
            let result = if mode == "raw" {
                lmhost_template::environment(1)
                    .template_from_str(&source)
                    .map(|_| ())
                    .map_err(lmhost_template::describe)
            } else {
                lmhost_template::check(&source)
            };
            eprintln!("{} bytes in {:?}", source.len(), started.elapsed());
            result
        })
        .unwrap()
        .join()
        .unwrap();
    match result {
        Ok(()) => println!("ok"),
        Err(e) => println!("err: {}", &e[..e.len().min(200)]),
    }
}
