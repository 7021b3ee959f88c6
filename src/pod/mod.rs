//! Pod orchestration: lifecycle, monitor, rollback.
