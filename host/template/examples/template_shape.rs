//! Prints the shape (largest tag in tokens, deepest block nesting) of every
//! template given as a JSON string per line on stdin, then the maxima: the
//! figures behind `MAX_TAG_TOKENS` and `MAX_BLOCK_DEPTH`.

use std::io::BufRead;

fn main() {
    let (mut tokens, mut depth, mut count) = (0, 0, 0);
    for line in std::io::stdin().lock().lines() {
        let template: String = serde_json::from_str(&line.unwrap()).expect("one JSON string per line");
        let shape = lmhost_template::measure_shape(&template);
        println!(
            "{} tokens, depth {}: {:.60?}",
            shape.max_tag_tokens, shape.max_block_depth, template
        );
        tokens = shape.max_tag_tokens.max(tokens);
        depth = shape.max_block_depth.max(depth);
        count += 1;
    }
    println!("{count} templates: largest tag {tokens} tokens, deepest nesting {depth}");
}
