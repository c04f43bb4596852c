"""Tests of zerocopy.http and zerocopy serve, with curl and raw sockets."""
