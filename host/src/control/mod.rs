//! The control plane: the JSON control API that changes distributions, the
//! records it stores, the state they decode to, and the snapshot viewers are
//! served from.

pub mod api;
pub mod console;
pub mod decode;
pub mod error;
pub mod etag;
pub mod fleet;
pub mod fleet_state;
pub mod plane;
pub mod records;
pub mod state;
pub mod views;
pub mod writes;

pub use api::{ControlApi, MAX_JSON_BODY};
pub use error::ApiError;
pub use etag::IfMatch;
pub use plane::{ControlOptions, ControlPlane, PlaneParts};
pub use records::distributions::DistributionRecord;
pub use state::{ControlState, DeployStatus};
