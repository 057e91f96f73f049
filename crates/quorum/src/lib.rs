//! The KRaft-style metadata quorum: the cluster metadata log, replicated
//! across the controller voters with Raft (`openraft`), so metadata survives
//! the loss of a minority of controllers.
