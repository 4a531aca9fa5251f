"""A coordinator replica: client API, worker streams, leader election."""
