import numpy as np
import pytest

from face_analysis.ops.similarity import cosine_matrix, largest_face, similarity_score


def test_cosine_matrix_matches_definition():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 8)), rng.normal(size=(4, 8))
    m = cosine_matrix(a, b)
    assert m.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            expected = a[i] @ b[j] / np.linalg.norm(a[i]) / np.linalg.norm(b[j])
            assert m[i, j] == pytest.approx(expected)
    assert cosine_matrix(a, a).diagonal() == pytest.approx(np.ones(3))
    assert cosine_matrix(a, -a).diagonal() == pytest.approx(-np.ones(3))


def test_cosine_matrix_with_no_faces():
    assert cosine_matrix(np.zeros((0, 8)), np.ones((2, 8))).shape == (0, 2)


@pytest.mark.parametrize("threshold", [0.3, 0.4, 0.6])
def test_score_puts_threshold_at_50_and_is_monotonic(threshold):
    assert similarity_score(threshold, threshold) == pytest.approx(50)
    assert similarity_score(1.0, threshold) == pytest.approx(100)
    assert similarity_score(0.0, threshold) == 0
    assert similarity_score(-0.7, threshold) == 0
    xs = np.linspace(-1, 1, 201)
    scores = similarity_score(xs, threshold)
    assert np.all(np.diff(scores) >= 0)
    assert scores.min() >= 0 and scores.max() <= 100
    assert np.all((scores >= 50) == (xs >= threshold))


def test_score_rejects_meaningless_threshold():
    with pytest.raises(ValueError):
        similarity_score(0.5, 1.0)


def test_largest_face():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 30, 5], [5, 5, 25, 25]], dtype=np.float32)
    assert largest_face(boxes) == 2
    assert largest_face(np.zeros((0, 4))) == -1
