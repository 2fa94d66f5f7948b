//! Figure 1: the Worker's wasm, raw and gzipped, and what takes the most of
//! it.

use super::Report;
use crate::stack::Stack;
use crate::worker;
use anyhow::Result;

pub(super) fn worker_size(stack: &Stack, report: &mut Report) -> Result<()> {
    let (raw, gz) = worker::wasm_size(&worker::wasm_path())?;
    report.add("1", "Worker wasm, raw", "KiB", &[raw as f64 / 1024.0]);
    report.add_target(
        "1",
        "Worker wasm, gzipped",
        "KiB",
        &[gz as f64 / 1024.0],
        180.0,
        true,
    );
    for (item, bytes) in worker::top_contributors(&stack.worker_tools, 8)? {
        report.add("1", format!("  {item}"), "KiB", &[bytes as f64 / 1024.0]);
    }
    Ok(())
}
