//! The demo data set.
use crate::error::ApiError;
use crate::service::Omorg;

/// Loads the demo.
pub async fn load(_app: &Omorg) -> Result<String, ApiError> {
    Ok(String::new())
}
