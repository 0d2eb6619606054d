//! How many nanoseconds does it take to normalise one request path?

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use partnergate::normalize::{normalize_path, normalize_target};

fn paths(c: &mut Criterion) {
    let long = format!("/{}", "portal/section-0123456789/".repeat(8))
        .get(..200)
        .unwrap_or_default()
        .to_owned();
    let mut group = c.benchmark_group("normalize");
    group.bench_function("normal_short", |b| {
        b.iter(|| normalize_path(black_box("/dashboard")))
    });
    group.bench_function("typical_target", |b| {
        b.iter(|| normalize_target(black_box("/clients/client-42/reports/2026?x=1")))
    });
    group.bench_function("dirty", |b| {
        b.iter(|| normalize_path(black_box("/a/./b/../c//d/%7Euser/%41%42")))
    });
    group.bench_function("normal_long_200", |b| {
        b.iter(|| normalize_path(black_box(long.as_str())))
    });
    group.finish();
}

criterion_group!(benches, paths);
criterion_main!(benches);
