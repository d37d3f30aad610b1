//! When the daemon tries a failed apply again: an error a retry cannot fix waits for a change;
//! any other is retried after 2 s, then 4, 8, ... up to 60 s between tries, and the delay starts
//! over after an apply succeeds.
use crate::reconcile::ApplyError;
use std::time::Duration;

const FIRST: Duration = Duration::from_secs(2);
const MAX: Duration = Duration::from_secs(60);

/// What the daemon does after an apply, besides reacting to changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The apply succeeded.
    Idle,
    /// It failed in a way only a change can fix (the config, the kernel's links, the state file).
    WaitForChange,
    /// It failed in a way that may pass: try again after this long.
    RetryIn(Duration),
}

/// Consecutive failures that may pass, since the last success.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    pub fn after<T>(&mut self, result: &Result<T, ApplyError>) -> Next {
        match result {
            Ok(_) => {
                self.failures = 0;
                Next::Idle
            }
            Err(e) if e.is_permanent() => Next::WaitForChange,
            Err(_) => {
                // Capped before the shift: 2 s << 5 is already past the maximum.
                let delay = FIRST.saturating_mul(1 << self.failures.min(5)).min(MAX);
                self.failures = self.failures.saturating_add(1);
                Next::RetryIn(delay)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigErrors;

    fn transient() -> Result<(), ApplyError> {
        Err(ApplyError::Kernel(anyhow::anyhow!("create macvlan child of eth0: No such device (os error 19)")))
    }

    fn permanent() -> Result<(), ApplyError> {
        let mut errors = ConfigErrors::default();
        errors.push("networks.lan.parent", "interface eth9 does not exist");
        Err(errors.into())
    }

    fn secs(n: u64) -> Next {
        Next::RetryIn(Duration::from_secs(n))
    }

    #[test]
    fn transient_failures_back_off_from_2_to_60_seconds() {
        let mut b = Backoff::default();
        let delays: Vec<Next> = (0..9).map(|_| b.after(&transient())).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60, 60, 60].map(secs));
    }

    #[test]
    fn a_success_starts_the_delays_over() {
        let mut b = Backoff::default();
        for _ in 0..4 {
            b.after(&transient());
        }
        assert_eq!(b.after(&Ok(())), Next::Idle);
        assert_eq!(b.after(&transient()), secs(2));
    }

    #[test]
    fn permanent_failures_wait_for_a_change_and_leave_the_delay_as_it_was() {
        let mut b = Backoff::default();
        assert_eq!(b.after(&permanent()), Next::WaitForChange);
        assert_eq!(b.after(&transient()), secs(2));
        assert_eq!(b.after(&permanent()), Next::WaitForChange);
        assert_eq!(b.after(&transient()), secs(4));
    }

    #[test]
    fn the_delay_never_overflows() {
        let mut b = Backoff { failures: u32::MAX };
        assert_eq!(b.after(&transient()), secs(60));
        assert_eq!(b.after(&transient()), secs(60));
    }
}
