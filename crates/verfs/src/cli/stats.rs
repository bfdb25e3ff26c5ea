//! `verfsnext stats`.

use anyhow::{bail, Result};
use verfs_core::control::{MemoryReport, Request, Response, StatsReport};

use super::units::Sizes;
use super::ConfigArgs;
use crate::control::client;

/// Asks the daemon of the configured data dir for its figures and prints them.
pub fn run(args: &ConfigArgs, json: bool, sizes: Sizes) -> Result<()> {
    let cfg = super::config::load(args)?;
    let Response::Stats(s) = client::call(&cfg.data_dir, &Request::Stats)? else {
        bail!("unexpected answer to stats");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print_human(&s, sizes);
    }
    Ok(())
}

fn print_human(s: &StatsReport, sizes: Sizes) {
    let size = |b| sizes.fmt(b);
    let a = &s.activity;
    println!("logical bytes        {}", size(s.logical_bytes));
    println!("unique bytes         {}", size(s.unique_bytes));
    println!("stored chunk bytes   {}", size(s.stored_chunk_bytes));
    println!("pack bytes on disk   {}", size(s.pack_bytes));
    println!("dedup ratio          {:.3}", s.dedup_ratio);
    println!("compression ratio    {:.3}", s.compression_ratio);
    println!(
        "chunks               {} (+{} unreferenced)",
        s.chunk_count, s.unreferenced_chunks
    );
    println!("packs                {}", s.pack_count);
    println!("dedup hits / misses  {} / {}", a.dedup_hits, a.dedup_misses);
    println!(
        "chunk cache          {:.1}% hits ({} / {})",
        s.chunk_cache_hit_rate * 100.0,
        a.chunk_cache_hits,
        a.chunk_cache_hits + a.chunk_cache_misses
    );
    println!(
        "dedup cache          {:.1}% hits ({} / {})",
        s.dedup_cache_hit_rate * 100.0,
        a.dedup_cache_hits,
        a.dedup_cache_hits + a.dedup_cache_misses
    );
    println!(
        "pack index cache     {:.1}% hits ({} / {})",
        s.pack_index_hit_rate * 100.0,
        a.pack_index_hits,
        a.pack_index_hits + a.pack_index_misses
    );
    println!(
        "damaged reads        {} (EIO: damaged or missing pack data)",
        a.damaged_reads
    );
    println!(
        "batches              {} (mean {:.1} blocks)",
        a.batches, s.mean_batch_blocks
    );
    println!(
        "bytes written / read {} / {}",
        size(a.bytes_written),
        size(a.bytes_read)
    );
    println!("scrub damaged chunks {}", a.scrub_damaged_chunks);
    println!(
        "fsyncs               {} through the intent log, {} full ({} log checkpoints)",
        a.fsyncs_logged, a.fsyncs_full, a.intent_checkpoints
    );
    print_memory(&s.memory, sizes);
}

/// The memory budget: each share's use against its limit ("-" where nothing measures
/// it), then the daemon's resident set.
fn print_memory(m: &MemoryReport, sizes: Sizes) {
    let opt = |b: Option<u64>| b.map_or_else(|| "-".to_string(), |b| sizes.fmt(b));
    println!("memory limit         {}", sizes.fmt(m.limit_bytes));
    for share in &m.shares {
        println!(
            "  {:<18} {} of {}",
            share.name,
            opt(share.used_bytes),
            sizes.fmt(share.limit_bytes)
        );
    }
    println!(
        "resident / peak      {} / {}",
        opt(m.rss_bytes),
        opt(m.peak_rss_bytes)
    );
}
