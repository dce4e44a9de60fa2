//! API Gateway WebSocket events in, domain calls, proxy responses out. (Filled in below.)
