"""Where the downloadable datasets come from, and the checksums their files must match.

Checksum sources
----------------
- MNIST ``.gz`` files: the SHA-256 sums published with the mirrors PyTorch
  (``ossci-datasets``) and TensorFlow (``cvdf-datasets``) serve; the same four values are
  pinned by many independent projects.
- MNIST uncompressed IDX files: SHA-256 of the decompressed official archives, the same
  values pinned by several independent projects.
- Fashion-MNIST ``.gz`` files: SHA-256 of Zalando's official archives (whose MD5 sums the
  project's README publishes); the values torchvision's dataset code pins.
- Fashion-MNIST uncompressed IDX files: SHA-256 of the decompressed official archives,
  as pinned by independent projects.
- CIFAR-10 ``cifar-10-python.tar.gz``: SHA-256 of the Toronto archive (MD5
  ``c58f30108f718f92721af3b95e74349a`` published on the CIFAR page); the value
  torchvision's dataset code pins.
- Olivetti faces ``olivettifaces.mat``: the SHA-256 scikit-learn's
  ``fetch_olivetti_faces`` pins for the same file (its figshare copy of Sam Roweis's).

A file whose checksum is ``None`` is not verified; loading it warns.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REMOTE_FILES", "RemoteFile"]


@dataclass(frozen=True)
class RemoteFile:
    """One file of a downloadable dataset.

    Attributes
    ----------
    filename : str
        Its name in ``advml_home() / <dataset>``.
    urls : tuple of str
        Mirrors, tried in order.
    sha256 : str or None
        The SHA-256 the file must have; ``None`` when no published value is known.
    size : int or None
        Size in bytes, shown before downloading.
    plain_name : str or None
        For a compressed file that may also be placed uncompressed: that copy's name.
    plain_sha256 : str or None
        The uncompressed copy's SHA-256.
    """

    filename: str
    urls: tuple[str, ...]
    sha256: str | None
    size: int | None = None
    plain_name: str | None = None
    plain_sha256: str | None = None


_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_FASHION_MIRRORS = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)


def _idx_files(
    mirrors: tuple[str, ...], table: tuple[tuple[str, int, str, str], ...]
) -> tuple[RemoteFile, ...]:
    return tuple(
        RemoteFile(
            filename=name,
            urls=tuple(m + name for m in mirrors),
            sha256=sha,
            size=size,
            plain_name=name.removesuffix(".gz"),
            plain_sha256=plain,
        )
        for name, size, sha, plain in table
    )


#: The checksum table: dataset name -> the files it needs.
REMOTE_FILES: dict[str, tuple[RemoteFile, ...]] = {
    "mnist": _idx_files(
        _MNIST_MIRRORS,
        (
            (
                "train-images-idx3-ubyte.gz",
                9_912_422,
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            ),
            (
                "train-labels-idx1-ubyte.gz",
                28_881,
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            ),
            (
                "t10k-images-idx3-ubyte.gz",
                1_648_877,
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            ),
            (
                "t10k-labels-idx1-ubyte.gz",
                4_542,
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            ),
        ),
    ),
    "fashion-mnist": _idx_files(
        _FASHION_MIRRORS,
        (
            (
                "train-images-idx3-ubyte.gz",
                26_421_880,
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            ),
            (
                "train-labels-idx1-ubyte.gz",
                29_515,
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            ),
            (
                "t10k-images-idx3-ubyte.gz",
                4_422_102,
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            ),
            (
                "t10k-labels-idx1-ubyte.gz",
                5_148,
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            ),
        ),
    ),
    "cifar10": (
        RemoteFile(
            filename="cifar-10-python.tar.gz",
            urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
            sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
            size=170_498_071,
        ),
    ),
    "olivetti": (
        RemoteFile(
            filename="olivettifaces.mat",
            # figshare serves the file by number; the fragment (never sent to the server)
            # names it, as every URL of this table names its file.
            urls=(
                "https://ndownloader.figshare.com/files/5976027#/olivettifaces.mat",
                "https://cs.nyu.edu/~roweis/data/olivettifaces.mat",
            ),
            sha256="b612fb967f2dc77c9c62d3e1266e0c73d5fca46a4b8906c18e454d41af987794",
        ),
    ),
}
