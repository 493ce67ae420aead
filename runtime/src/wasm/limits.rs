//! Limits the host holds a guest to, whoever runs it: a memory cap summed over all of a
//! store's linear memories, and the reasons the host stops a guest.

use std::fmt;

use wasmtime::ResourceLimiter;

use crate::spec::ByteSize;

/// Why the host stopped a guest. Carried as the error of the trap it causes, so the
/// executor can tell the user which limit was hit.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    Cancelled,
    /// The attempt's wall-clock limit passed.
    TimedOut(std::time::Duration),
    CpuTime(std::time::Duration),
    Memory {
        cap: u64,
        requested: u64,
    },
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Cancelled => f.write_str("cancelled"),
            Stop::TimedOut(limit) => {
                write!(f, "timed out after {}", humantime::format_duration(*limit))
            }
            Stop::CpuTime(limit) => write!(
                f,
                "CPU time limit of {} exceeded",
                humantime::format_duration(*limit)
            ),
            Stop::Memory { cap, requested } => write!(
                f,
                "memory limit of {} exceeded (the component asked for {} in all)",
                ByteSize(*cap),
                ByteSize(*requested)
            ),
        }
    }
}

impl std::error::Error for Stop {}

/// Caps the sum of all linear memories of a store. `wasmtime::StoreLimits` caps each
/// memory on its own, which a component with several memories could exceed in total.
#[derive(Debug)]
pub struct MemoryCap {
    cap: u64,
    total: u64,
    peak: u64,
    /// The growth last allowed, undone if the allocation then fails.
    pending: u64,
}

impl MemoryCap {
    pub fn new(cap: u64) -> MemoryCap {
        MemoryCap {
            cap,
            total: 0,
            peak: 0,
            pending: 0,
        }
    }

    pub fn peak(&self) -> u64 {
        self.peak
    }

    /// Bytes of linear memory the store has now, over all its memories.
    pub fn total(&self) -> u64 {
        self.total
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let delta = (desired - current) as u64;
        let requested = self.total + delta;
        if requested > self.cap {
            // An error (rather than `Ok(false)`) traps at once with the reason, instead of
            // letting the guest's allocator abort with a less helpful message.
            return Err(wasmtime::Error::new(Stop::Memory {
                cap: self.cap,
                requested,
            }));
        }
        self.total = requested;
        self.peak = self.peak.max(self.total);
        self.pending = delta;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.total -= std::mem::take(&mut self.pending);
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Each table element costs a pointer; hold tables to a tenth of the memory cap.
        Ok((desired as u64) * 8 <= self.cap / 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_cap_counts_every_memory() {
        let mut cap = MemoryCap::new(10 << 20);
        assert!(cap.memory_growing(0, 6 << 20, None).unwrap());
        assert!(cap.memory_growing(0, 3 << 20, None).unwrap());
        let err = cap.memory_growing(6 << 20, 8 << 20, None).unwrap_err();
        assert_eq!(
            err.downcast_ref::<Stop>(),
            Some(&Stop::Memory {
                cap: 10 << 20,
                requested: 11 << 20
            })
        );
        assert_eq!(cap.peak(), 9 << 20);
    }

    #[test]
    fn a_failed_growth_is_given_back() {
        let mut cap = MemoryCap::new(10 << 20);
        assert!(cap.memory_growing(0, 8 << 20, None).unwrap());
        cap.memory_grow_failed(wasmtime::Error::msg("os refused"))
            .unwrap();
        assert!(cap.memory_growing(0, 9 << 20, None).unwrap());
    }
}
