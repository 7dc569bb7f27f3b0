//! The shortest list of actions that still diverges: delta debugging
//! (ddmin) over the schedule, removing chunks from halves down to single
//! actions. Every sublist still runs: an operation the model refuses fails
//! as `ip` would, and changes nothing.

use crate::schedule::Action;

/// Removes what it can from `actions` while `diverges` holds, in at most
/// `budget` runs.
pub fn shrink(
    actions: Vec<Action>,
    mut diverges: impl FnMut(&[Action]) -> bool,
    budget: usize,
) -> Vec<Action> {
    let mut current = actions;
    let mut chunks = 2;
    let mut runs = 0;
    while current.len() >= 2 && runs < budget {
        let size = current.len().div_ceil(chunks);
        let mut reduced = false;
        for start in (0..current.len()).step_by(size) {
            let end = (start + size).min(current.len());
            let candidate: Vec<Action> = current[..start]
                .iter()
                .chain(&current[end..])
                .cloned()
                .collect();
            runs += 1;
            if diverges(&candidate) {
                current = candidate;
                chunks = (chunks - 1).max(2);
                reduced = true;
                break;
            }
            if runs >= budget {
                break;
            }
        }
        if !reduced {
            if chunks >= current.len() {
                break;
            }
            chunks = (chunks * 2).min(current.len());
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Fault;

    #[test]
    fn finds_the_two_actions_that_matter() {
        let mut actions = vec![Action::Settle; 40];
        actions[7] = Action::Start;
        actions[31] = Action::Fault(Fault::Overrun);
        let diverges = |list: &[Action]| {
            list.contains(&Action::Start) && list.contains(&Action::Fault(Fault::Overrun))
        };
        let shrunk = shrink(actions, diverges, 2000);
        assert_eq!(shrunk, vec![Action::Start, Action::Fault(Fault::Overrun)]);
    }
}
