"""The frozen teacher(s) of the KD criteria: loading, checks, and their log-probabilities."""

import copy
import os
from typing import Iterator, List, Optional

import torch
from fairseq import checkpoint_utils
from fairseq.data import Dictionary
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.models import FairseqEncoderDecoderModel

from .fairseq_access import decode_prefix, encode_source


class TeacherEnsemble:
    """One or more teacher models, frozen, in eval mode, on the student's device and dtype.

    Deliberately not an ``nn.Module`` attribute of the criterion: fairseq would then hand
    the teacher's weights to the optimizer, save them in every student checkpoint and
    wrap the criterion for distributed training. Built from checkpoints
    (:meth:`from_checkpoints`, word-level KD and TIE-KD) or as a frozen copy of the student
    (:meth:`from_model`, progressive self-KD, whose teacher is the previous epoch's student).
    """

    def __init__(self, models: List[torch.nn.Module], paths: Optional[List[str]] = None, dtype=None):
        """``dtype``: the teachers' own dtype, kept whatever the student's (None: the student's)."""
        self.paths = paths or []
        self.dtype = dtype
        self.models = []
        for model in models:
            model.eval()
            model.requires_grad_(False)
            self.models.append(model)
        self._placement = None

    @classmethod
    def from_checkpoints(cls, paths: str, task, flag: str = "--kd-teacher-path") -> "TeacherEnsemble":
        files = paths.split(":") if paths else []
        if not files or not all(files):
            raise ValueError(
                f"{flag} is required: give the teacher checkpoint (or several, separated by ':', "
                f"for an ensemble), got '{paths}'"
            )
        models = []
        for path in files:
            state, cfg = read_teacher_checkpoint(path, flag)
            check_teacher_task(path, cfg.task, task, flag)
            # Dictionaries are equal (checked above), so the student's task builds the teacher.
            loaded, _ = checkpoint_utils.load_model_ensemble([path], task=task, state=state)
            models.extend(loaded)
        return cls(models, files)

    @classmethod
    def from_model(cls, model: torch.nn.Module) -> "TeacherEnsemble":
        """A frozen copy of ``model`` (an unwrapped fairseq model) with its current weights."""
        return cls([copy.deepcopy(model)])

    def load_weights(self, state_dict) -> None:
        """Give the (single) teacher these weights, in place: its device and dtype stay."""
        (model,) = self.models
        model.load_state_dict(state_dict, strict=True)

    def place(self, like: torch.Tensor) -> None:
        """Move the teachers to the device and dtype of ``like`` (a student parameter) when
        they are not there yet (the first time, and whenever the student's change)."""
        placement = (like.device, self.dtype or like.dtype)
        if placement != self._placement:
            for model in self.models:
                model.to(device=placement[0], dtype=placement[1])
            self._placement = placement

    def encode(self, net_input, like: torch.Tensor) -> Optional[List[object]]:
        """Each teacher's encoder output for ``net_input``, to reuse over several decoder
        passes on the same source (TIE-KD); None when some teacher has no encoder."""
        if not all(isinstance(model, FairseqEncoderDecoderModel) for model in self.models):
            return None
        self.place(like)
        with torch.no_grad():
            return [encode_source(model, net_input) for model in self.models]

    def log_probs(
        self, net_input, like: torch.Tensor, encoder_outs: Optional[List[object]] = None
    ) -> Iterator[torch.Tensor]:
        """Each teacher's log-probabilities [B, T, V] for ``net_input``, one at a time (no gradient).

        ``like``: a student parameter (see :meth:`place`). ``encoder_outs``: what
        :meth:`encode` returned for this source; only the decoders run then.
        """
        self.place(like)
        for i, model in enumerate(self.models):
            with torch.no_grad():
                if encoder_outs is None:
                    net_output = model(**net_input)
                else:
                    net_output = decode_prefix(
                        model.decoder, net_input["prev_output_tokens"], encoder_outs[i], net_input
                    )
                lprobs = model.get_normalized_probs(net_output, log_probs=True)
                del net_output  # the logits [B, T, V]: not kept alive while the caller holds lprobs
            yield lprobs  # outside no_grad: a suspended generator would leave it on for the caller


def epoch_end_weights(epoch: int, save_dir: str, restore_file: str, suffix: str = ""):
    """(state dict or None, what it is) of the model at the end of epoch ``epoch - 1``, for a run
    that fairseq-train resumed into epoch ``epoch``.

    fairseq restored from ``restore_file`` (``checkpoint_last.pt`` in ``save_dir`` by default).
    When that checkpoint was written at the end of epoch - 1 (its data iterator says: epoch
    ``epoch``, 0 iterations in), the restored weights in memory are the ones: returns None. When
    it was written inside epoch ``epoch`` (--save-interval-updates), the weights are read from
    fairseq's epoch checkpoint ``checkpoint{epoch - 1}.pt`` in ``save_dir``.
    """
    restored = restored_checkpoint(save_dir, restore_file, suffix)
    position = _iterator_position(restored)
    if position == (epoch, 0):
        return None, f"the weights restored from {restored} (written at the end of epoch {epoch - 1})"
    end_file = os.path.join(save_dir, f"checkpoint{epoch - 1}{suffix}.pt")
    fix = (
        f"the teacher of epoch {epoch} is the model at the end of epoch {epoch - 1}, which is in "
        f"{end_file}: keep the epoch checkpoints (no --no-epoch-checkpoints, --keep-last-epochs >= 1), "
        "or resume from a checkpoint written at an epoch's end"
    )
    if position is None:
        raise ValueError(f"PS-KD resumes into epoch {epoch}, but {restored} holds no data iterator state: {fix}")
    if not os.path.isfile(end_file):
        raise FileNotFoundError(
            f"PS-KD resumes inside epoch {epoch} ({restored} is {position[1]} batches into epoch "
            f"{position[0]}), and {end_file} is missing: {fix}"
        )
    if _iterator_position(end_file) != (epoch, 0):
        raise ValueError(f"{end_file} was not written at the end of epoch {epoch - 1}: {fix}")
    state = torch.load(end_file, map_location="cpu", mmap=True)
    return state["model"], f"the weights of {end_file}"


def restored_checkpoint(save_dir: str, restore_file: str, suffix: str = "") -> str:
    """The checkpoint fairseq-train resumes from, as its ``checkpoint_utils.load_checkpoint``
    resolves --restore-file (default: ``checkpoint_last.pt`` in --save-dir)."""
    if restore_file == "checkpoint_last.pt":
        return os.path.join(save_dir, f"checkpoint_last{suffix}.pt")
    return restore_file.replace(".pt", f"{suffix}.pt") if suffix else restore_file


def _iterator_position(path: str):
    """(epoch, iterations in it) of the data iterator saved in a training checkpoint, or None."""
    if not os.path.isfile(path):
        return None
    state = torch.load(path, map_location="cpu", mmap=True)  # reads no tensor data but the accessed
    itr = (state.get("extra_state") or {}).get("train_iterator")
    if not itr:
        return None
    return int(itr["epoch"]), int(itr.get("iterations_in_epoch", 0))


def read_teacher_checkpoint(path: str, flag: str):
    """(state, cfg) of a fairseq checkpoint, with errors that name the file and the fix."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{flag}: teacher checkpoint '{path}' not found")
    try:
        state = checkpoint_utils.load_checkpoint_to_cpu(path)
    except Exception as err:
        raise ValueError(
            f"{flag}: cannot read teacher checkpoint '{path}' ({type(err).__name__}: {err}); "
            "give a checkpoint written by fairseq-train"
        ) from err
    cfg = state.get("cfg")
    if cfg is None and state.get("args") is not None:
        cfg = convert_namespace_to_omegaconf(state["args"])
    if cfg is None or "model" not in state:
        raise ValueError(f"{flag}: '{path}' holds no fairseq model (no cfg/args or model)")
    return state, cfg


def check_teacher_data(path: str, data_dir: str, source_lang: str, target_lang: str, flag: str) -> None:
    """A translation teacher must use the dictionaries of the binarised data ``data_dir``
    (for scripts that run it on that data, such as sequence-level distillation)."""
    _, cfg = read_teacher_checkpoint(path, flag)
    check_language_pair(path, cfg.task, source_lang, target_lang, flag)
    for role, lang in (("source", source_lang), ("target", target_lang)):
        file_name = f"dict.{lang}.txt"
        teacher_file = find_teacher_dictionary(path, cfg.task, file_name, flag)
        data_file = os.path.join(data_dir, file_name)
        check_same_dictionary(role, Dictionary.load(teacher_file), teacher_file, Dictionary.load(data_file), flag)


def check_teacher_task(path: str, teacher_task_cfg, task, flag: str) -> None:
    """The teacher must solve the student's task with the student's dictionaries."""
    student_name = registered_task_name(task)
    teacher_name = getattr(teacher_task_cfg, "_name", None)
    if student_name and teacher_name and student_name != teacher_name:
        raise ValueError(
            f"{flag}: teacher '{path}' was trained for --task {teacher_name}, the student runs "
            f"--task {student_name}; a teacher must be trained for the student's task"
        )
    student_cfg = getattr(task, "cfg", None)
    check_language_pair(
        path,
        teacher_task_cfg,
        getattr(student_cfg, "source_lang", None),
        getattr(student_cfg, "target_lang", None),
        flag,
    )
    for role, file_name, student_dict in dictionaries_to_compare(teacher_task_cfg, task):
        teacher_file = find_teacher_dictionary(path, teacher_task_cfg, file_name, flag)
        check_same_dictionary(role, Dictionary.load(teacher_file), teacher_file, student_dict, flag)


def check_language_pair(path: str, teacher_task_cfg, source_lang, target_lang, flag: str) -> None:
    """A translation teacher must translate the student's direction: with a joined dictionary an
    en-de teacher has the dictionaries of a de-en student, and would teach it the wrong language."""
    teacher_pair = (getattr(teacher_task_cfg, "source_lang", None), getattr(teacher_task_cfg, "target_lang", None))
    if not all(teacher_pair) or not (source_lang and target_lang):
        return  # language modelling, or a side that names no languages: the dictionaries decide
    if teacher_pair != (source_lang, target_lang):
        raise ValueError(
            f"{flag}: teacher '{path}' translates {teacher_pair[0]}-{teacher_pair[1]}, the student "
            f"{source_lang}-{target_lang}; give a teacher trained for {source_lang}-{target_lang} (-s "
            f"{source_lang} -t {target_lang})"
        )


def registered_task_name(task):
    """The --task name of a task object (its cfg no longer says, once fairseq merged it)."""
    from fairseq.tasks import TASK_REGISTRY

    return next((name for name, cls in TASK_REGISTRY.items() if type(task) is cls), None)


def dictionaries_to_compare(teacher_task_cfg, task):
    """(role, file name, student dictionary) for each dictionary the teacher reads or writes."""
    student_cfg = getattr(task, "cfg", None)
    source_lang = getattr(teacher_task_cfg, "source_lang", None) or getattr(student_cfg, "source_lang", None)
    target_lang = getattr(teacher_task_cfg, "target_lang", None) or getattr(student_cfg, "target_lang", None)
    if source_lang and target_lang:  # translation
        return [
            ("source", f"dict.{source_lang}.txt", task.source_dictionary),
            ("target", f"dict.{target_lang}.txt", task.target_dictionary),
        ]
    return [("target", "dict.txt", task.target_dictionary)]  # language modelling


def find_teacher_dictionary(path: str, teacher_task_cfg, file_name: str, flag: str) -> str:
    """The teacher's dictionary: beside its checkpoint, else in the data it was trained on."""
    places = [os.path.dirname(os.path.abspath(path))]
    data = getattr(teacher_task_cfg, "data", None)
    if data:
        places.append(str(data).split(os.pathsep)[0])
    for place in places:
        candidate = os.path.join(place, file_name)
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(
        f"{flag}: cannot find the teacher's {file_name} (looked in {' and '.join(places)}); "
        f"copy the {file_name} the teacher was trained with next to '{path}'"
    )


def check_same_dictionary(role: str, teacher: Dictionary, teacher_file: str, student: Dictionary, flag: str):
    if teacher.symbols == student.symbols:
        return
    first = next(
        (i for i, (a, b) in enumerate(zip(teacher.symbols, student.symbols)) if a != b),
        min(len(teacher), len(student)),
    )
    teacher_symbol = teacher.symbols[first] if first < len(teacher) else "(none)"
    student_symbol = student.symbols[first] if first < len(student) else "(none)"
    raise ValueError(
        f"{flag}: the teacher's {role} dictionary ({teacher_file}, {len(teacher)} symbols) differs "
        f"from the student's ({len(student)} symbols), first at id {first}: teacher "
        f"'{teacher_symbol}', student '{student_symbol}'. Binarise the student's data with the "
        "teacher's dictionaries (fairseq-preprocess --srcdict/--tgtdict) or train the teacher on "
        "the student's data"
    )
