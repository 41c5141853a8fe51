"""Wire-level doubles of lastmile's peers: real protocols on 127.0.0.1, with recording and policies."""
