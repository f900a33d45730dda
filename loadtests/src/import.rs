//! `hotline registry import` of a whole registry, chunked into one fresh
//! database and with `--first-load` into another, next to two ceilings in
//! the same run: a plain `COPY` of the same certificate rows into a table
//! with no index, no constraint and no trigger, and the same of every row
//! the import writes (holders and cards too). Then the same file again
//! (every holder unchanged), the rate a daily re-delivery costs. And the
//! ceiling like for like: PostgreSQL's own `pg_restore` of the database the
//! first load made, the least time in which this machine turns the same rows
//! into the same constrained registry. Each step is measured in the
//! machine's busy CPU time as well as in time: how much work it is, and so
//! how fast the machine's cores could do it at best.

use std::ops::Add;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::Command;

use crate::common::{Target, fresh_database, hotline, psql, psql_value};
use crate::cpu::machine_busy;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Holders in the file (about 2.7 certificates each).
    #[arg(long, default_value_t = 100_000)]
    holders: u64,
}

/// A step's time and the machine's busy CPU time meanwhile, in seconds.
#[derive(Debug, Clone, Copy, Default)]
struct Step {
    secs: f64,
    cpu: f64,
}

impl Add for Step {
    type Output = Step;
    fn add(self, other: Step) -> Step {
        Step { secs: self.secs + other.secs, cpu: self.cpu + other.cpu }
    }
}

/// Where a step started.
struct Mark(Instant, Duration);

impl Mark {
    fn now() -> anyhow::Result<Self> {
        Ok(Mark(Instant::now(), machine_busy()?))
    }

    fn step(&self) -> anyhow::Result<Step> {
        Ok(Step { secs: self.0.elapsed().as_secs_f64(), cpu: (machine_busy()? - self.1).as_secs_f64() })
    }
}

/// The like-for-like ceiling of a load that must end with a constrained
/// registry: PostgreSQL restoring the very database the first load made
/// (rows, then every key, index and foreign key built once, as its manual
/// advises), from an uncompressed dump so that no decompression slows it.
/// In one transaction, as the first load is, and with a job per core, the
/// best PostgreSQL itself does on this machine. Returns both, the second
/// with its number of jobs.
async fn restore_ceilings(
    admin: &str,
    loaded_db: &str,
    dir: &std::path::Path,
    certificates: f64,
) -> anyhow::Result<[(Step, usize); 2]> {
    let dump = dir.join("first_load.dump");
    let dump_arg = dump.to_str().context("a temporary path that is not UTF-8")?;
    let dumped = Command::new("pg_dump").args(["-Fc", "-Z", "0", "-f", dump_arg, "-d", loaded_db]).status().await?;
    anyhow::ensure!(dumped.success(), "pg_dump of the first load's database failed");
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut restores = [(Step::default(), 1), (Step::default(), jobs)];
    for (i, (step, jobs)) in restores.iter_mut().enumerate() {
        let db = fresh_database(admin, "hotline_bench_restore").await?;
        let how = if i == 0 { "--single-transaction".to_owned() } else { format!("--jobs={jobs}") };
        let started = Mark::now()?;
        let restored = Command::new("pg_restore")
            .args(["--exit-on-error", "--no-owner", &how, "-d", &db, dump_arg])
            .status()
            .await?;
        *step = started.step()?;
        anyhow::ensure!(restored.success(), "pg_restore {how} failed");
        let count: f64 = psql_value(&db, "SELECT count(*) FROM certificates").await?.parse()?;
        anyhow::ensure!(count == certificates, "pg_restore {how} restored {count} certificates of {certificates}");
    }
    psql(admin, "DROP DATABASE IF EXISTS hotline_bench_restore WITH (FORCE)").await?;
    Ok(restores)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let db = fresh_database(&args.target.pg_url, "hotline_bench_import").await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("registry.jsonl");
    let file_arg = file.to_str().context("a temporary path that is not UTF-8")?;
    eprintln!("writing {} holders…", args.holders);
    hotline(
        &args.target.hotline,
        &db,
        &[],
        &["registry", "generate", "--holders", &args.holders.to_string(), file_arg],
    )
    .await?;
    hotline(&args.target.hotline, &db, &[], &["migrate"]).await?;

    eprintln!("importing in chunks…");
    let started = Mark::now()?;
    let summary = hotline(&args.target.hotline, &db, &[], &["registry", "import", file_arg]).await?;
    let chunked = started.step()?;
    let started = Mark::now()?;
    let again = hotline(&args.target.hotline, &db, &[], &["registry", "import", file_arg]).await?;
    let second = started.step()?;
    let certificates: f64 = psql_value(&db, "SELECT count(*) FROM certificates").await?.parse()?;

    eprintln!("importing as a first load into another database…");
    let first_db = fresh_database(&args.target.pg_url, "hotline_bench_first_load").await?;
    hotline(&args.target.hotline, &first_db, &[], &["migrate"]).await?;
    let started = Mark::now()?;
    let first_summary =
        hotline(&args.target.hotline, &first_db, &[], &["registry", "import", "--first-load", file_arg]).await?;
    let first_load = started.step()?;
    let loaded: f64 = psql_value(&first_db, "SELECT count(*) FROM certificates").await?.parse()?;
    anyhow::ensure!(
        loaded == certificates,
        "the first load registered {loaded} certificates, the chunked import {certificates}"
    );
    let first_size = psql_value(&first_db, "SELECT pg_database_size(current_database())").await?;
    let restores = restore_ceilings(&args.target.pg_url, &first_db, dir.path(), loaded).await?;
    psql(&args.target.pg_url, "DROP DATABASE IF EXISTS hotline_bench_first_load WITH (FORCE)").await?;

    // The second ceiling: the holders' and cards' rows too, into bare tables.
    let mut every_row = Step::default();
    for table in ["holders", "cards"] {
        let rows = dir.path().join(format!("{table}.copy"));
        let rows_arg = rows.to_str().context("a temporary path that is not UTF-8")?;
        psql(&db, &format!("\\copy {table} TO '{rows_arg}'")).await?;
        psql(&db, &format!("CREATE TABLE ceiling_{table} (LIKE {table})")).await?;
        let started = Mark::now()?;
        psql(&db, &format!("\\copy ceiling_{table} FROM '{rows_arg}'")).await?;
        every_row = every_row + started.step()?;
        psql(&db, &format!("DROP TABLE ceiling_{table}")).await?;
    }

    // The ceiling: the same rows, COPYed into a bare table, as psql sends them.
    let rows = dir.path().join("certificates.copy");
    let rows_arg = rows.to_str().context("a temporary path that is not UTF-8")?;
    psql(&db, &format!("\\copy certificates TO '{rows_arg}'")).await?;
    // The same COPY into the certificates table's own indexes and checks, then with its foreign keys too:
    // where the time between the ceiling and the import goes.
    let tables = [
        ("ceiling", "CREATE TABLE ceiling (LIKE certificates)".to_owned()),
        ("indexed", "CREATE TABLE indexed (LIKE certificates INCLUDING ALL)".to_owned()),
        (
            "keyed",
            "CREATE TABLE keyed (LIKE certificates INCLUDING ALL,
               FOREIGN KEY (holder_id) REFERENCES holders (id), FOREIGN KEY (issuer) REFERENCES issuers (id),
               FOREIGN KEY (card_id) REFERENCES cards (id))"
                .to_owned(),
        ),
    ];
    let mut copies = Vec::new();
    for (table, create) in &tables {
        psql(&db, create).await?;
        let started = Mark::now()?;
        psql(&db, &format!("\\copy {table} FROM '{rows_arg}'")).await?;
        copies.push(started.step()?);
    }
    let ceiling = copies[0];
    every_row = every_row + ceiling;
    // What a first-load mode would reach: the bare table's indexes and foreign keys built once, after the rows.
    let started = Mark::now()?;
    psql(
        &db,
        "CREATE UNIQUE INDEX ON ceiling (issuer, serial);
         CREATE INDEX ON ceiling (card_id);
         CREATE INDEX ON ceiling (holder_id, device_id);
         CREATE INDEX ON ceiling (issuer, serial) WHERE status <> 'good';
         ALTER TABLE ceiling ADD PRIMARY KEY (id),
           ADD FOREIGN KEY (holder_id) REFERENCES holders (id), ADD FOREIGN KEY (issuer) REFERENCES issuers (id),
           ADD FOREIGN KEY (card_id) REFERENCES cards (id);",
    )
    .await?;
    let built_after = ceiling + started.step()?;
    for (table, _) in &tables {
        psql(&db, &format!("DROP TABLE {table}")).await?;
    }
    let size = psql_value(&db, "SELECT pg_database_size(current_database())").await?;
    psql(&args.target.pg_url, "DROP DATABASE IF EXISTS hotline_bench_import WITH (FORCE)").await?;

    println!("{}", summary.trim());
    println!("{}", again.trim());
    println!("{}", first_summary.trim());
    println!(
        "| step | time | certificates per second | ratio to the certificates' `COPY` | ratio to every row's `COPY` | busy CPU time (all cores) |"
    );
    println!("|---|---|---|---|---|---|");
    let line = |step: &str, Step { secs, cpu }: Step| {
        println!(
            "| {step} | {secs:.2} s | {:.0} | {:.3} | {:.3} | {cpu:.2} s |",
            certificates / secs,
            ceiling.secs / secs,
            every_row.secs / secs
        );
    };
    line("`COPY` of the certificate rows into a bare table (ceiling)", ceiling);
    line("`COPY` of every row (holders, cards, certificates) into bare tables (ceiling)", every_row);
    line("`COPY` into a table with the certificates' indexes and checks", copies[1]);
    line("`COPY` into that table with its foreign keys too", copies[2]);
    line("`COPY` into the bare table, then its indexes and foreign keys built once", built_after);
    line("first load (`--first-load`: holders, cards, certificates, keys, audit)", first_load);
    line("chunked import (holders, cards, certificates, audit)", chunked);
    line("the same file again (all unchanged)", second);
    let [(one_tx, _), (parallel, jobs)] = restores;
    line("`pg_restore --single-transaction` of the database the first load made (ceiling)", one_tx);
    line(&format!("`pg_restore -j {jobs}` of the same dump (ceiling)"), parallel);
    println!(
        "the first load against PostgreSQL's own restore of what it made: {:.3} of `pg_restore --single-transaction`, {:.3} of `pg_restore -j {jobs}`",
        one_tx.secs / first_load.secs,
        parallel.secs / first_load.secs
    );
    // However well a load spread its work over the cores, it could not take less than its CPU time shared out.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let floor = first_load.cpu / cores;
    println!(
        "the first load's work, {:.2} s of CPU time, on {cores} cores takes {floor:.2} s at best: at most {:.3} of the certificates' `COPY`, {:.3} of every row's",
        first_load.cpu,
        ceiling.secs / floor,
        every_row.secs / floor
    );
    println!(
        "database size after the chunked import: {:.0} MB, {:.0} bytes per certificate; after the first load: {:.0} MB, {:.0} bytes per certificate",
        size.parse::<f64>()? / 1e6,
        size.parse::<f64>()? / certificates,
        first_size.parse::<f64>()? / 1e6,
        first_size.parse::<f64>()? / certificates
    );
    Ok(())
}
