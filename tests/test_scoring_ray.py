

def test_bench_scoring_engine_ray(cluster, tiny_rm_dir):
    from rmtui.cli import app

    r = CliRunner().invoke(app, ["bench", "scoring", "--engine", "ray", "--model", str(tiny_rm_dir), "--n", "24",
                                 "--max-length", "64", "--actors", "2", "--chunk-size", "8"])
    assert r.exit_code == 0, r.output
    assert "in-process (cpu): " in r.output and "Ray (ray: 2 actor(s), 0 GPU, 1 CPU each): " in r.output
    assert "agree, tolerance 1e-05" in r.output and "ratio Ray/in-process " in r.output
