//! Step 05's rewrite rules: any rule text parses or is refused, and the
//! paths a client sends through the rules the course shows stay paths.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use middleware::rewrite::{Rewrite, Rule};

static COURSE_RULES: LazyLock<Rewrite> = LazyLock::new(|| {
    Rewrite::new(vec![
        "^/api/v1/(.*)=/$1".parse().expect("the rule NOTES shows"),
        Rule::strip_prefix("/api"),
    ])
});

fuzz_target!(|input: (&str, &str)| {
    let (rule, path) = input;
    if let Ok(rule) = rule.parse::<Rule>() {
        let _ = Rewrite::new(vec![rule]).apply(path);
    }
    if path.starts_with('/')
        && let Some(rewritten) = COURSE_RULES.apply(path)
    {
        assert!(rewritten.starts_with('/'), "{path:?} became {rewritten:?}");
    }
});
