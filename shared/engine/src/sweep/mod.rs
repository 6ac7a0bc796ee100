//! Sweeps: many configs of one create-job body, run on the same bars and ranked (API.md,
//! "Sweeps"; docs/sweeps.md). No I/O and no AWS: the offline `pipai sweep` and the service both
//! build on this.
//!
//! - [`spec`]: the create-sweep body, parsed strictly into a [`SweepSpec`].
//! - [`expand`]: the spec's configs, in a documented order, each validated as a create-job body;
//!   [`group`] splits them by the bars they need.
//! - [`rank`]: constraints, the leaderboard, the degradation report.
//! - [`estimate`]: the cost of a sweep without loading bars (`dry_run`) and the chunk rule the
//!   service fans out by.

pub mod estimate;
pub mod expand;
pub mod rank;
pub mod spec;

pub use estimate::{chunk_configs, plan_chunks, Estimate};
pub use expand::{group, GroupKey};
pub use rank::{degradation, Candidate, DegradationReport, LeaderboardEntry, OosMetrics, Ranking};
pub use spec::{Axes, Constraint, RankMetric, Search, SweepSpec, ValidationSpec, MAX_CONFIGS};
