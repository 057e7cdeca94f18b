"""The file MLflow runs to build the served model where it is loaded (MLflow's models from code): the model is
this code, shipped beside it, rather than a pickled object."""
from mlflow.models import set_model

from lsdseg.sweep.serving import Segmenter

set_model(Segmenter())
