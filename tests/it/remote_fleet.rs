//! Fleet mechanics: no stray ssh masters, even after Ctrl-C.
