//! Comparing the two backends' runs of one sequence, shrinking a
//! disagreement to a short sequence, and the report printed for it.

use super::*;

/// The first step at which two runs disagree.
pub struct Mismatch {
    pub seed: u64,
    pub ops: Vec<Op>,
    pub index: usize,
    pub deterministic: Vec<Step>,
    pub tokio: Vec<Step>,
}

impl Mismatch {
    /// What kind of disagreement this is (the op and both results'
    /// variants), to group and shrink by.
    pub fn signature(&self) -> String {
        let describe = |step: Option<&Step>| match step {
            Some(step) => step.outcome.label(),
            None => "(ended)".into(),
        };
        let det = self.deterministic.get(self.index);
        let tok = self.tokio.get(self.index);
        let kind = det.or(tok).map_or("?", |step| step.kind);
        format!(
            "{kind}: deterministic {} / tokio {}",
            describe(det),
            describe(tok)
        )
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the backends disagree at step {} ({}), seed {}, {} ops:",
            self.index,
            self.signature(),
            self.seed,
            self.ops.len()
        )?;
        for (i, step) in self.deterministic.iter().take(self.index).enumerate() {
            writeln!(
                f,
                "  {i:>3}  {}  =>  {}",
                abbreviate(&step.what),
                step.outcome
            )?;
        }
        let show = |step: Option<&Step>| match step {
            Some(step) => format!("{}  =>  {}", abbreviate(&step.what), step.outcome),
            None => "(no such step: the run ended)".into(),
        };
        writeln!(
            f,
            "  {:>3}  deterministic: {}",
            self.index,
            show(self.deterministic.get(self.index))
        )?;
        writeln!(
            f,
            "       tokio:         {}",
            show(self.tokio.get(self.index))
        )?;
        writeln!(f, "ops:")?;
        for op in &self.ops {
            writeln!(f, "  {}", abbreviate(&format!("{op:?}")))?;
        }
        Ok(())
    }
}

/// Runs `ops` on both backends and returns the first disagreement.
pub fn check(ops: &[Op], seed: u64) -> Result<(), Box<Mismatch>> {
    let deterministic = run_deterministic(ops, seed);
    let tokio = run_tokio(ops);
    let steps = deterministic.len().max(tokio.len());
    for index in 0..steps {
        let agree = match (deterministic.get(index), tokio.get(index)) {
            (Some(d), Some(t)) => d.what == t.what && d.outcome.agrees(&t.outcome),
            _ => false,
        };
        if !agree {
            return Err(Box::new(Mismatch {
                seed,
                ops: ops.to_vec(),
                index,
                deterministic,
                tokio,
            }));
        }
    }
    Ok(())
}

/// `op` with the handle, end or slot it addresses lowered to `to`, if
/// that is lower.
pub(super) fn lowered(op: &Op, to: u8) -> Option<Op> {
    let mut op = op.clone();
    let index = match &mut op {
        Op::Clone { h }
        | Op::Write { h, .. }
        | Op::Read { h, .. }
        | Op::Len { h }
        | Op::Truncate { h, .. }
        | Op::Sync { h }
        | Op::Close { h }
        | Op::Drop { h } => h,
        Op::Bind { slot } | Op::DropListener { slot } | Op::Dial { slot } | Op::Accept { slot } => {
            slot
        }
        Op::Send { end, .. }
        | Op::Recv { end, .. }
        | Op::DropSink { end }
        | Op::DropStream { end } => end,
        Op::Open { .. } | Op::Remove { .. } | Op::Scan { .. } => return None,
    };
    if to >= *index {
        return None;
    }
    *index = to;
    Some(op)
}

/// A short sub-sequence of `mismatch.ops` that still disagrees the same
/// way, found greedily within `budget` runs: drop chunks of ops (halving
/// the chunk size down to single ops), and lower the indices ops address
/// (which lets more ops go, as indices are taken modulo what exists).
pub fn shrink(mismatch: Box<Mismatch>, budget: usize) -> Box<Mismatch> {
    let signature = mismatch.signature();
    let mut best = mismatch;
    let mut runs = 0;
    // Whether `candidate` disagrees the same way (it then becomes `best`).
    let attempt = |candidate: Vec<Op>, best: &mut Box<Mismatch>, runs: &mut usize| {
        *runs += 1;
        match check(&candidate, best.seed) {
            Err(found) if found.signature() == signature => {
                *best = found;
                true
            }
            _ => false,
        }
    };
    loop {
        let mut chunk = best.ops.len().div_ceil(2).max(1);
        loop {
            let mut i = 0;
            while i < best.ops.len() && runs < budget {
                let mut candidate = best.ops.clone();
                candidate.drain(i..(i + chunk).min(best.ops.len()));
                if !attempt(candidate, &mut best, &mut runs) {
                    i += chunk;
                }
            }
            if chunk == 1 || runs >= budget {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
        let mut lowered_any = false;
        for i in 0..best.ops.len() {
            for to in 0..4 {
                if runs >= budget {
                    return best;
                }
                let Some(op) = best.ops.get(i).and_then(|op| lowered(op, to)) else {
                    continue;
                };
                let mut candidate = best.ops.clone();
                candidate[i] = op;
                if attempt(candidate, &mut best, &mut runs) {
                    lowered_any = true;
                    break;
                }
            }
        }
        if runs >= budget || !lowered_any {
            return best;
        }
    }
}

/// Checks that both backends agree on `ops`; panics with the shrunk
/// sequence and both results if they do not.
pub fn assert_agree(ops: &[Op], seed: u64) {
    if let Err(mismatch) = check(ops, seed) {
        let shrunk = shrink(mismatch, 200);
        panic!("{shrunk}");
    }
}
