-- Databases of the standalone SpiceDB (the beep services create their own).
CREATE DATABASE beep_spicedb;
CREATE DATABASE beep_kratos;
