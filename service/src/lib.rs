//! touxiang service
