# pytest's rootdir conftest: puts this directory on sys.path so tests import `app`.
